"""Servicer wiring of the vad service.

Skeleton from the foundation issue: health, reflection and the API surface are served; the
methods answer UNIMPLEMENTED until the service's own issue implements them.
"""
from __future__ import annotations

from interview.v1 import vad_pb2, vad_pb2_grpc
from services.vad.config import VadConfig
from services.common.server import ServiceRuntime


async def build(cfg: VadConfig, runtime: ServiceRuntime) -> None:
    runtime.add(vad_pb2.DESCRIPTOR.services_by_name["Vad"].full_name,
                vad_pb2_grpc.add_VadServicer_to_server, vad_pb2_grpc.VadServicer())
