"""Servicer wiring of the orchestrator service.

Skeleton from the foundation issue: health, reflection and the API surface are served; the
methods answer UNIMPLEMENTED until the service's own issue implements them.
"""
from __future__ import annotations

from interview.v1 import interviews_pb2, interviews_pb2_grpc
from interview.v1 import session_pb2, session_pb2_grpc
from services.orchestrator.config import OrchestratorConfig
from services.common.server import ServiceRuntime


async def build(cfg: OrchestratorConfig, runtime: ServiceRuntime) -> None:
    runtime.add(interviews_pb2.DESCRIPTOR.services_by_name["Interviews"].full_name,
                interviews_pb2_grpc.add_InterviewsServicer_to_server, interviews_pb2_grpc.InterviewsServicer())
    runtime.add(session_pb2.DESCRIPTOR.services_by_name["Session"].full_name,
                session_pb2_grpc.add_SessionServicer_to_server, session_pb2_grpc.SessionServicer())
