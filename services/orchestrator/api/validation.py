"""Request validation: every malformed field is reported as INVALID_ARGUMENT naming the field and
what is accepted (services.common.errors.invalid), before anything touches the store."""
from __future__ import annotations

import re

from interview.v1 import common_pb2, interviews_pb2, session_pb2
from services.common.errors import ResourceExhausted, invalid
from services.orchestrator.store.store import ID_RE

MAX_CODE_BYTES = 256 * 1024
STREAM_ID_RE = re.compile(r"^\d{1,20}-\d{1,20}$")
LABEL_KEY_RE = re.compile(r"^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MODES = (common_pb2.MODE_CONVERSATIONAL, common_pb2.MODE_CODING)


def interview_id(value: str, field: str = "interview_id") -> str:
    if not value:
        raise invalid(field, "required")
    if not ID_RE.match(value):
        raise invalid(field, f"{value[:40]!r} is not an interview id (expected 'iv_' and 20 hex digits)")
    return value


def max_len(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise invalid(field, f"too long ({len(value)} characters; at most {limit})")


def mode(value: int, field: str) -> None:
    if value not in MODES:
        raise invalid(field, f"{value} is not a mode: use MODE_CONVERSATIONAL (1) or MODE_CODING (2)")


def vad_params(p: common_pb2.VadParams, field: str) -> None:
    for name in ("activation_threshold", "deactivation_threshold"):
        if p.HasField(name) and not 0.0 <= getattr(p, name) <= 1.0:
            raise invalid(f"{field}.{name}", f"{getattr(p, name):g} is outside 0..1")
    if (p.HasField("activation_threshold") and p.HasField("deactivation_threshold")
            and p.deactivation_threshold > p.activation_threshold):
        raise invalid(f"{field}.deactivation_threshold", "must not exceed activation_threshold")
    for name, lo, hi in (("min_speech_ms", 0, 10_000), ("min_silence_ms", 100, 30_000), ("speech_pad_ms", 0, 2_000)):
        if p.HasField(name) and not lo <= getattr(p, name) <= hi:
            raise invalid(f"{field}.{name}", f"{getattr(p, name)} is outside {lo}..{hi}")


# The turn policy's defaults for unset TurnTakingConfig fields (api/ may not import conversation/;
# tests/orchestrator/test_turn_taking.py checks they equal turn_policy.TurnPolicyConfig's).
TURN_TAKING_DEFAULTS = interviews_pb2.TurnTakingConfig(
    enabled=True, turn_pause_ms=200, commit_threshold=0.8, hold_threshold=0.15, undecided_max_wait_ms=1200,
    hold_max_wait_ms=3000, preemptive_reply=True, learn_pauses=True)
# A base that lets any combination pass: ranges only (an UpdateConfig checks the combination
# against the interview's own values once it has read them).
TURN_TAKING_ANY = interviews_pb2.TurnTakingConfig(commit_threshold=1.0, hold_threshold=0.0, undecided_max_wait_ms=0,
                                                  hold_max_wait_ms=60_000)


def turn_taking(t: interviews_pb2.TurnTakingConfig, field: str,
                base: interviews_pb2.TurnTakingConfig = TURN_TAKING_DEFAULTS) -> None:
    """Each field in its range, then the combination as the policy needs it (hold_threshold <=
    commit_threshold, undecided wait <= hold wait), unset fields taking their value from `base`:
    the defaults at creation, the interview's current values for an UpdateConfig. A bad
    combination names a field the request set."""
    for name in ("commit_threshold", "hold_threshold"):
        if t.HasField(name) and not 0.0 <= getattr(t, name) <= 1.0:
            raise invalid(f"{field}.{name}", f"{getattr(t, name):g} is outside 0..1")
    for name, lo, hi in (("turn_pause_ms", 100, 2_000), ("undecided_max_wait_ms", 0, 60_000),
                         ("hold_max_wait_ms", 0, 60_000)):
        if t.HasField(name) and not lo <= getattr(t, name) <= hi:
            raise invalid(f"{field}.{name}", f"{getattr(t, name)} is outside {lo}..{hi}")
    merged = interviews_pb2.TurnTakingConfig()
    merged.CopyFrom(base)
    merged.MergeFrom(t)
    for low, high in (("hold_threshold", "commit_threshold"), ("undecided_max_wait_ms", "hold_max_wait_ms")):
        if getattr(merged, low) > getattr(merged, high):
            name, other, word = (low, high, "above") if t.HasField(low) or not t.HasField(high) else (high, low, "below")
            source = "" if t.HasField(other) else (" the default" if base is TURN_TAKING_DEFAULTS else " the interview's")
            raise invalid(f"{field}.{name}",
                          f"{getattr(merged, name):g} is {word}{source} {other} ({getattr(merged, other):g})")


def silence_timeout(value: int, field: str) -> None:
    if not 0 <= value <= 3600:
        raise invalid(field, f"{value} is outside 0..3600 seconds (0 = the default, 90)")


def config(c: interviews_pb2.InterviewConfig, field: str = "config") -> None:
    if c.mode:
        mode(c.mode, f"{field}.mode")
    silence_timeout(c.silence_timeout_s, f"{field}.silence_timeout_s")
    vad_params(c.conversational_vad, f"{field}.conversational_vad")
    vad_params(c.coding_vad, f"{field}.coding_vad")
    if c.HasField("turn_taking"):
        turn_taking(c.turn_taking, f"{field}.turn_taking")
    max_len(c.tts_voice, f"{field}.tts_voice", 100)
    if c.language and not LANGUAGE_RE.match(c.language):
        raise invalid(f"{field}.language", f"{c.language[:20]!r} is not a language tag such as 'en' or 'en-US'")


def create_request(r: interviews_pb2.CreateInterviewRequest) -> None:
    if r.WhichOneof("plan_source") is None:
        raise invalid("plan_source", "set template (e.g. 'backend-engineer') or an inline plan")
    max_len(r.candidate.name, "candidate.name", 200)
    max_len(r.candidate.email, "candidate.email", 320)
    if r.candidate.email and "@" not in r.candidate.email:
        raise invalid("candidate.email", "not an e-mail address")
    max_len(r.candidate.external_id, "candidate.external_id", 200)
    max_len(r.role, "role", 200)
    if r.persona not in (common_pb2.PERSONA_UNSPECIFIED, common_pb2.PERSONA_INTERVIEWER, common_pb2.PERSONA_COACH):
        raise invalid("persona", f"{r.persona} is not a persona: use PERSONA_INTERVIEWER or PERSONA_COACH")
    config(r.config)
    if not 0 <= r.join_token_ttl_s <= 30 * 24 * 3600:
        raise invalid("join_token_ttl_s", f"{r.join_token_ttl_s} is outside 0..2592000 seconds (0 = server default)")
    max_len(r.request_id, "request_id", 128)
    if len(r.labels) > 32:
        raise invalid("labels", f"{len(r.labels)} labels; at most 32")
    for key, value in r.labels.items():
        if not LABEL_KEY_RE.match(key):
            raise invalid(f"labels[{key[:40]!r}]", "keys are 1-63 lower-case letters, digits, '_', '.', '-'")
        max_len(value, f"labels[{key!r}]", 256)


def code_snapshot(c: interviews_pb2.CodeSnapshot, field: str = "code") -> None:
    kinds = (common_pb2.CODE_EVENT_EDIT, common_pb2.CODE_EVENT_RUN, common_pb2.CODE_EVENT_SUBMIT)
    if c.kind not in kinds:
        raise invalid(f"{field}.kind", "required: CODE_EVENT_EDIT, CODE_EVENT_RUN or CODE_EVENT_SUBMIT")
    max_len(c.language, f"{field}.language", 50)
    size = len(c.content.encode()) + len(c.diff.encode()) + len(c.output.encode())
    if size > MAX_CODE_BYTES:
        raise ResourceExhausted(f"{field}: content + diff + output is {size} bytes; at most {MAX_CODE_BYTES}",
                                field=field)


def page_size(value: int, field: str, default: int, limit: int) -> int:
    if value < 0:
        raise invalid(field, f"{value} is negative")
    return min(value or default, limit)


def status_filter(value: int) -> None:
    if value not in (session_pb2.INTERVIEW_STATUS_UNSPECIFIED, session_pb2.INTERVIEW_CREATED,
                     session_pb2.INTERVIEW_ACTIVE, session_pb2.INTERVIEW_ENDED):
        raise invalid("status", f"{value} is not an interview status")


def stream_position(value: str, field: str = "after_event_id") -> str:
    if value in ("", "$") or STREAM_ID_RE.match(value):
        return value
    raise invalid(field, f"{value[:40]!r} is not an event id (like '1700000000000-0'), '' or '$'")
