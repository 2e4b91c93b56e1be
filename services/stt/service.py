"""Servicer wiring of the stt service.

Skeleton from the foundation issue: health, reflection and the API surface are served; the
methods answer UNIMPLEMENTED until the service's own issue implements them.
"""
from __future__ import annotations

from interview.v1 import stt_pb2, stt_pb2_grpc
from services.stt.config import SttConfig
from services.common.server import ServiceRuntime


async def build(cfg: SttConfig, runtime: ServiceRuntime) -> None:
    runtime.add(stt_pb2.DESCRIPTOR.services_by_name["Stt"].full_name,
                stt_pb2_grpc.add_SttServicer_to_server, stt_pb2_grpc.SttServicer())
