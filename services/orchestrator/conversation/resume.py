"""Picking an interview up where it stopped. A session that joins an interview which was joined
before (the candidate reconnected, or another instance took over after a crash) rebuilds the LLM
history from the durable transcript, restores the phase clock from when the current phase began,
and opens with TASK_RESUME (welcome back, the open question again) instead of a second greeting.

Read at join, after the previous owner's in-flight turns were closed (so they are included, once):
the newest transcript entries and the newest PhaseChanged event, concurrently (one round trip).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from interview.v1 import interviews_pb2, llm_pb2
from services.common.clock import Clock
from services.orchestrator.store.store import InterviewStore

TAIL = 200  # entries read: enough to fill the history (40 by default) and summarise what is older


@dataclass(frozen=True)
class Earlier:
    """What earlier sessions left: the conversation, and the newest phase change."""

    messages: list[llm_pb2.ChatMessage]  # oldest first
    phase_change: interviews_pb2.Event | None


async def load(store: InterviewStore, iid: str) -> Earlier:
    entries, changed = await asyncio.gather(store.transcript_tail(iid, TAIL), store.last_event(iid, "phase_changed"))
    return Earlier([chat_message(e) for e in entries if e.text.strip()], changed)


def chat_message(entry: interviews_pb2.TranscriptEntry) -> llm_pb2.ChatMessage:
    """A transcript entry as the history message its session recorded. An `incomplete` entry (cut
    off by a disconnect or crash) holds only what was heard, like an interrupted one."""
    return llm_pb2.ChatMessage(role=entry.role, text=entry.text, interrupted=entry.interrupted or entry.incomplete,
                               time=entry.end_time if entry.HasField("end_time") else entry.start_time,
                               mode=entry.mode, phase_id=entry.phase_id)


def phase_started_at(interview: interviews_pb2.Interview, changed: interviews_pb2.Event | None) -> float | None:
    """When the current phase began: its PhaseChanged, or the interview's start (the first phase,
    or a phase set before the first join: the clock runs from the start)."""
    times = []
    if interview.HasField("started_at"):
        times.append(interview.started_at.ToNanoseconds() / 1e9)
    if changed is not None and changed.phase_changed.to_phase_id == interview.phase_id:
        times.append(changed.time.ToNanoseconds() / 1e9)
    return max(times) if times else None


def monotonic_at(clock: Clock, wall: float) -> float:
    """A past wall time on the clock's monotonic scale (never in the future)."""
    return clock.monotonic() - max(0.0, clock.time() - wall)
