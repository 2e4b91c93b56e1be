"""Servicer wiring of the tts service.

Skeleton from the foundation issue: health, reflection and the API surface are served; the
methods answer UNIMPLEMENTED until the service's own issue implements them.
"""
from __future__ import annotations

from interview.v1 import tts_pb2, tts_pb2_grpc
from services.tts.config import TtsConfig
from services.common.server import ServiceRuntime


async def build(cfg: TtsConfig, runtime: ServiceRuntime) -> None:
    runtime.add(tts_pb2.DESCRIPTOR.services_by_name["Tts"].full_name,
                tts_pb2_grpc.add_TtsServicer_to_server, tts_pb2_grpc.TtsServicer())
