"""Wiring of the vad service: one Silero session and one Batcher per process, the Vad servicer."""
from __future__ import annotations

import sys

from interview.v1 import vad_pb2, vad_pb2_grpc
from services.common.server import ServiceRuntime
from services.vad.batcher import Batcher
from services.vad.config import VadConfig
from services.vad.detector import ParamsError
from services.vad.model import SileroModel
from services.vad.servicer import VadServicer


async def build(cfg: VadConfig, runtime: ServiceRuntime) -> None:
    try:
        defaults = cfg.default_params()
    except ParamsError as exc:
        print(f"VadConfig: invalid configuration:\n  - VAD_{exc.field.upper()}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    batcher = Batcher(SileroModel(), max_batch=cfg.max_batch, max_wait_s=cfg.batch_wait_ms / 1000,
                      max_pending=cfg.max_pending_windows)
    await batcher.start()
    runtime.on_shutdown(batcher.close)
    runtime.add(vad_pb2.DESCRIPTOR.services_by_name["Vad"].full_name, vad_pb2_grpc.add_VadServicer_to_server,
                VadServicer(batcher, defaults, cfg.idle_timeout_s))
