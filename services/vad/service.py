"""Wiring of the vad service: one Silero session and one Batcher per process, one Smart Turn
session and one TurnScorer, the Vad servicer."""
from __future__ import annotations

import logging
import sys

from grpc_health.v1 import health_pb2

from interview.v1 import vad_pb2, vad_pb2_grpc
from services.common.server import ServiceRuntime
from services.vad.batcher import Batcher
from services.vad.config import VadConfig
from services.vad.detector import ParamsError
from services.vad.model import SileroModel
from services.vad.servicer import VadServicer
from services.vad.turns import TurnScorer

log = logging.getLogger("vad.service")
# Health detail: a grpc.health.v1 check of this name says whether turn scoring works here
# (SERVING) or not (NOT_SERVING: the model file is missing; speech detection is unaffected).
TURN_SCORING_HEALTH = "interview.v1.Vad/turn_scoring"


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
    scorer = TurnScorer.load(cfg.turn_model, max_batch=cfg.turn_max_batch, max_wait_s=cfg.turn_batch_wait_ms / 1000,
                             max_pending=cfg.turn_max_pending, nice=cfg.turn_nice)
    if scorer.available:
        await scorer.start()
        runtime.on_shutdown(scorer.close)
        log.info("turn scoring available", extra={"model": str(scorer.model.path)})  # type: ignore[union-attr]
        await runtime.health.set(TURN_SCORING_HEALTH, health_pb2.HealthCheckResponse.SERVING)
    else:
        log.warning("turn scoring is OFF: the end-of-turn model is missing; speech detection works, "
                    "streams asking for turn scores get a Problem", extra={"reason": scorer.reason})
        await runtime.health.set(TURN_SCORING_HEALTH, health_pb2.HealthCheckResponse.NOT_SERVING)
    runtime.add(vad_pb2.DESCRIPTOR.services_by_name["Vad"].full_name, vad_pb2_grpc.add_VadServicer_to_server,
                VadServicer(batcher, defaults, cfg.idle_timeout_s, scorer=scorer))
