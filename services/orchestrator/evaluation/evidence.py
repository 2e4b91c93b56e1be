"""Evidence verification, in code: a citation stays only if it points at something this interview
holds and the quoted words are really there.

Rules (the issue's): a transcript citation must name an existing sequence number of a candidate
entry; an observation or code-event citation must name an event of this interview. The quote must
be in the cited text as at least MIN_QUOTE_WORDS consecutive words, or be the whole text,
compared without case and punctuation. A quote with an ellipsis is checked fragment by fragment.
Unverifiable evidence is dropped and counted; nothing is repaired or guessed.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from interview.v1 import common_pb2, interviews_pb2
from services.orchestrator.evaluation.material import Material

MIN_QUOTE_WORDS = 4
# Below this an entry may be a transcription error (0 = unknown: not marked). 0.5 fits both STT
# scales: the offline recogniser scores clean speech 0.53-0.92 and noisy (10 dB SNR) mostly below
# 0.5 (services/stt/providers/offline/decoder.py); Deepgram scores clean speech ~0.9+.
LOW_STT_CONFIDENCE = 0.5
_TOKEN = re.compile(r"[a-z0-9]+")
_ELLIPSIS = re.compile(r"\.\.\.+|…")


def tokens(text: str) -> list[str]:
    """Lower-case words without punctuation; apostrophes join ("don't" -> "dont")."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _TOKEN.findall(folded.replace("'", ""))


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def quote_in(quote: str, text: str) -> bool:
    """True when every fragment of `quote` is >= MIN_QUOTE_WORDS consecutive words of `text`, or
    the quote is the whole text."""
    whole = tokens(text)
    if not whole:
        return False
    if tokens(quote) == whole:
        return True
    fragments = [tokens(f) for f in _ELLIPSIS.split(quote)]
    fragments = [f for f in fragments if f]
    return bool(fragments) and all(len(f) >= MIN_QUOTE_WORDS and _contains(whole, f) for f in fragments)


def code_text(event: interviews_pb2.Event) -> str:
    code = event.code_event.code
    return "\n".join(part for part in (code.content, code.diff, code.output) if part)


@dataclass
class Checked:
    evidence: list[interviews_pb2.Evidence]
    removed: int
    reasons: list[str]


def verify(cited: list[dict], material: Material, low_confidence: float = LOW_STT_CONFIDENCE) -> Checked:
    """Keep the citations that verify (as Evidence protos), count the rest with a reason each.

    `cited` items are the model's {"source": transcript|observation|code_event, "ref", "quote"}.
    Duplicates (same place, same words) are kept once.
    """
    out: list[interviews_pb2.Evidence] = []
    reasons: list[str] = []
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    for item in cited:
        source = str(item.get("source", "")) if isinstance(item, dict) else ""
        ref = str(item.get("ref", "")).strip() if isinstance(item, dict) else ""
        quote = str(item.get("quote", "")).strip() if isinstance(item, dict) else ""
        problem, evidence = _check(source, ref, quote, material, low_confidence)
        if problem:
            reasons.append(problem)
            continue
        key = (source, ref, tuple(tokens(quote)))
        if key not in seen:
            seen.add(key)
            out.append(evidence)  # type: ignore[arg-type]
    return Checked(out, len(reasons), reasons)


def _check(source: str, ref: str, quote: str, material: Material,
           low_confidence: float) -> tuple[str, interviews_pb2.Evidence | None]:
    if not quote:
        return f"{source} {ref!r}: no quote", None
    if source == "transcript":
        digits = ref.lstrip("#")
        if not digits.isdigit():
            return f"transcript ref {ref!r} is not a sequence number", None
        entry = material.by_sequence.get(int(digits))
        if entry is None:
            return f"transcript #{digits} does not exist in this interview", None
        if entry.role != common_pb2.ROLE_USER:
            return f"transcript #{digits} is not the candidate's", None
        if not quote_in(quote, entry.text):
            return f"transcript #{digits} does not contain the quote", None
        low = 0 < entry.stt_confidence < low_confidence
        return "", interviews_pb2.Evidence(transcript_sequence=entry.sequence, quote=quote, low_stt_confidence=low)
    if source == "observation":
        event = material.observations.get(ref)
        if event is None:
            return f"observation {ref!r} does not exist in this interview", None
        if not quote_in(quote, event.observation.detail):
            return f"observation {ref!r} does not contain the quote", None
        return "", interviews_pb2.Evidence(observation_id=ref, quote=quote)
    if source == "code_event":
        event = material.code_events.get(ref)
        if event is None:
            return f"code event {ref!r} does not exist in this interview", None
        if not quote_in(quote, code_text(event)):
            return f"code event {ref!r} does not contain the quote", None
        return "", interviews_pb2.Evidence(code_event_id=ref, quote=quote)
    return f"unknown evidence source {source!r}", None
