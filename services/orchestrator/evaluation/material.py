"""What an evaluation reads: one interview's snapshot, transcript and events, indexed for lookups.

Both the evaluator (which cites it) and the evidence check (which verifies the citations) work on
the same Material, so what the model was shown is exactly what its citations are checked against.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from interview.v1 import common_pb2, interviews_pb2


def seconds(ts: object) -> float:
    return ts.seconds + ts.nanos / 1e9  # type: ignore[attr-defined]


@dataclass
class Material:
    interview: interviews_pb2.Interview
    entries: list[interviews_pb2.TranscriptEntry]
    events: list[interviews_pb2.Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.entries = sorted(self.entries, key=lambda e: e.sequence)
        self.by_sequence = {e.sequence: e for e in self.entries}
        self.observations = {ev.event_id: ev for ev in self.events if ev.WhichOneof("payload") == "observation"}
        self.code_events = {ev.event_id: ev for ev in self.events if ev.WhichOneof("payload") == "code_event"}

    @classmethod
    def of(cls, interview: interviews_pb2.Interview, entries: Sequence[interviews_pb2.TranscriptEntry],
           events: Sequence[interviews_pb2.Event] = ()) -> "Material":
        return cls(interview, list(entries), [ev for ev in events if ev.WhichOneof("payload") != "evaluation"])

    @property
    def plan(self) -> common_pb2.Plan:
        return self.interview.plan

    @property
    def candidate_entries(self) -> list[interviews_pb2.TranscriptEntry]:
        return [e for e in self.entries if e.role == common_pb2.ROLE_USER]

    @property
    def last_event_id(self) -> str:
        ids = [ev.event_id for ev in self.events if ev.event_id]
        return max(ids, key=_stream_id_key) if ids else ""

    @property
    def start_s(self) -> float:
        times = [seconds(e.start_time) for e in self.entries if e.HasField("start_time")]
        times += [seconds(ev.time) for ev in self.events if ev.HasField("time")]
        if self.interview.HasField("started_at"):
            times.append(seconds(self.interview.started_at))
        return min(times) if times else 0.0

    @property
    def end_s(self) -> float:
        times = [seconds(e.end_time) for e in self.entries if e.HasField("end_time")]
        times += [seconds(ev.time) for ev in self.events if ev.HasField("time")]
        if self.interview.HasField("ended_at"):
            times.append(seconds(self.interview.ended_at))
        return max(times) if times else 0.0

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    def phases_reached(self) -> list[str]:
        first = self.plan.phases[0].id if self.plan.phases else (self.entries[0].phase_id if self.entries else "")
        out = [first] if first else []
        for ev in self.events:
            if ev.WhichOneof("payload") == "phase_changed" and ev.phase_changed.to_phase_id not in out:
                out.append(ev.phase_changed.to_phase_id)
        for e in self.entries:
            if e.phase_id and e.phase_id not in out:
                out.append(e.phase_id)
        return out


def _stream_id_key(event_id: str) -> tuple[int, int]:
    ms, _, n = event_id.partition("-")
    try:
        return int(ms), int(n or 0)
    except ValueError:
        return 0, 0
