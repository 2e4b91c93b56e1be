"""Servicer wiring of the video service.

Skeleton from the foundation issue: health, reflection and the API surface are served; the
methods answer UNIMPLEMENTED until the service's own issue implements them.
"""
from __future__ import annotations

from interview.v1 import video_pb2, video_pb2_grpc
from services.video.config import VideoConfig
from services.common.server import ServiceRuntime


async def build(cfg: VideoConfig, runtime: ServiceRuntime) -> None:
    runtime.add(video_pb2.DESCRIPTOR.services_by_name["Video"].full_name,
                video_pb2_grpc.add_VideoServicer_to_server, video_pb2_grpc.VideoServicer())
