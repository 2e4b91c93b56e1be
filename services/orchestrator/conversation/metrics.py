"""Per-turn latency as a TurnMetrics event: every milestone in ms from the VAD's SPEECH_STOPPED
(as received by the session), so the stages add up to the voice-to-voice delay the candidate
feels, minus the VAD's own min-silence wait."""
from __future__ import annotations

from typing import TYPE_CHECKING

from interview.v1 import interviews_pb2
from services.common import metrics

STAGES = ("stt_final", "llm_first_token", "tts_first_audio", "first_audio_sent", "speech_end_to_commit",
          "commit_to_first_audio")
for _stage in STAGES:
    metrics.TURN_STAGE_SECONDS.labels(_stage)  # every stage present at 0 from the start

if TYPE_CHECKING:
    from services.orchestrator.conversation.turns import AgentTurn


def _ms(start: float | None, end: float | None) -> int:
    return -1 if start is None or end is None else int(round((end - start) * 1000))


def turn_metrics(turn: "AgentTurn", interrupted: bool = False) -> interviews_pb2.TurnMetrics:
    t = turn.times
    return interviews_pb2.TurnMetrics(
        turn_id=turn.generation_id, stt_final_ms=_ms(t.vad_stop, t.stt_final),
        llm_first_token_ms=_ms(t.vad_stop, t.llm_first_token), tts_first_audio_ms=_ms(t.vad_stop, t.tts_first_audio),
        first_audio_sent_ms=_ms(t.vad_stop, t.first_audio_sent), interrupted=interrupted,
        traceparent=turn.trace.traceparent, llm_provider=turn.llm_provider,
        speech_end_to_commit_ms=_ms(t.speech_end, t.committed), commit_to_first_audio_ms=_ms(t.committed, t.first_audio_sent),
        speculative=turn.speculative, speculative_starts=turn.spec_counts[0],
        speculative_cancelled=turn.spec_counts[1], speculative_wasted_tokens=turn.spec_counts[2])


def observe(m: interviews_pb2.TurnMetrics) -> None:
    """Into the process's Prometheus histograms (by stage; no per-interview label)."""
    if m.interrupted:
        metrics.TURNS_INTERRUPTED.inc()
        return
    for stage in STAGES:
        ms = getattr(m, f"{stage}_ms")
        if ms >= 0:
            metrics.TURN_STAGE_SECONDS.labels(stage).observe(ms / 1000)
