"""Servicer wiring of the stt service."""
from __future__ import annotations

from interview.v1 import stt_pb2, stt_pb2_grpc
from services.common.server import ServiceRuntime
from services.stt.config import SttConfig
from services.stt.servicer import SttServicer


async def build(cfg: SttConfig, runtime: ServiceRuntime) -> None:
    servicer = SttServicer(cfg)
    await servicer.warm()
    runtime.add(stt_pb2.DESCRIPTOR.services_by_name["Stt"].full_name,
                stt_pb2_grpc.add_SttServicer_to_server, servicer)
    runtime.on_shutdown(servicer.close)
