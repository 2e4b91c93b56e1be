"""Configuration of the vad service (env vars prefixed VAD_; `python -m services.vad env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env
from services.common.server import ServerSettings
from services.vad.detector import LIMITS, Params

_D = Params()


def _limit(name: str) -> dict[str, float]:
    return {"min": LIMITS[name].low, "max": LIMITS[name].high}


@dataclass(frozen=True)
class VadConfig:
    server: ServerSettings
    max_batch: int = env(64, min=1, max=1024, help="most windows (from different streams) in one ONNX call")
    batch_wait_ms: float = env(5.0, min=0, max=5, help="longest a window waits for others to join its batch")
    max_pending_windows: int = env(4096, min=1, help="windows queued for inference before streams are slowed down")
    idle_timeout_s: float = env(300.0, min=1, help="a stream with no message for this long ends (DEADLINE_EXCEEDED)")
    # Defaults for params a stream does not set (see services/vad/README.md).
    activation_threshold: float = env(_D.activation_threshold, **_limit("activation_threshold"),
                                      help="default: probability at or above which speech starts")
    deactivation_threshold: float = env(_D.deactivation_threshold, **_limit("deactivation_threshold"),
                                        help="default: probability below which silence counts")
    min_speech_ms: int = env(_D.min_speech_ms, **_limit("min_speech_ms"), help="default: shortest utterance")
    min_silence_ms: int = env(_D.min_silence_ms, **_limit("min_silence_ms"),
                              help="default: silence that ends an utterance")
    speech_pad_ms: int = env(_D.speech_pad_ms, **_limit("speech_pad_ms"), help="default: padding around offsets")
    turn_scoring: bool = env(_D.turn_scoring, help="default: score pauses with the end-of-turn model (callers enable it)")
    turn_pause_ms: int = env(_D.turn_pause_ms, **_limit("turn_pause_ms"), help="default: pause that triggers a turn score")
    turn_threshold: float = env(_D.turn_threshold, **_limit("turn_threshold"),
                                help="default: turn probability at or above which end_of_turn is set")
    # The end-of-turn model (Smart Turn v3.2) and its batching.
    turn_model: str = env("", help="Smart Turn ONNX file (default: the one inside the pipecat-ai package)")
    turn_max_batch: int = env(16, min=1, max=256, help="most pauses (from different streams) in one turn-model call")
    turn_batch_wait_ms: float = env(5.0, min=0, max=50, help="longest a pause waits for others to join its batch")
    turn_max_pending: int = env(256, min=1, help="pauses waiting for the turn model before new ones go unscored")
    turn_nice: int = env(5, min=0, max=19, help="the turn model thread's niceness above the Silero thread's")

    def default_params(self) -> Params:
        """Raises ParamsError when the thresholds contradict each other."""
        params = Params(self.activation_threshold, self.deactivation_threshold, self.min_speech_ms,
                        self.min_silence_ms, self.speech_pad_ms, self.turn_scoring, self.turn_pause_ms,
                        self.turn_threshold)
        params.validate()
        return params
