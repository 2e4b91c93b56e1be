"""Servicer wiring of the llm service.

Skeleton from the foundation issue: health, reflection and the API surface are served; the
methods answer UNIMPLEMENTED until the service's own issue implements them.
"""
from __future__ import annotations

from interview.v1 import llm_pb2, llm_pb2_grpc
from services.llm.config import LlmConfig
from services.common.server import ServiceRuntime


async def build(cfg: LlmConfig, runtime: ServiceRuntime) -> None:
    runtime.add(llm_pb2.DESCRIPTOR.services_by_name["Llm"].full_name,
                llm_pb2_grpc.add_LlmServicer_to_server, llm_pb2_grpc.LlmServicer())
