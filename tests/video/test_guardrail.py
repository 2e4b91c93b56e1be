"""The guardrail on a corpus: >= 95 % of forbidden phrasings dropped, <= 5 % of allowed ones."""
from __future__ import annotations

import json

from interview.v1 import common_pb2
from services.video.guardrail import Guardrail
from services.video.observations import Candidate
from tests.video.guardrail_corpus import ALLOWED, FORBIDDEN

SCREEN = common_pb2.VIDEO_SOURCE_SCREEN


def _run(items: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], Guardrail]:
    g = Guardrail()
    dropped = [(t, d) for t, d in items if g.check(Candidate(t, d, 0.8, SCREEN, 0)) is None]
    return dropped, g


def test_corpus_sizes() -> None:
    assert len(FORBIDDEN) >= 50 and len(ALLOWED) >= 50


def test_forbidden_dropped_at_least_95_percent() -> None:
    dropped, g = _run(FORBIDDEN)
    kept = [x for x in FORBIDDEN if x not in dropped]
    assert len(dropped) / len(FORBIDDEN) >= 0.95, f"kept: {kept}"
    assert sum(g.dropped.values()) == len(dropped)
    assert {"emotion", "nervousness", "confidence", "deception", "personality", "appearance",
            "demographics"} <= set(g.dropped), g.dropped


def test_allowed_kept_at_least_95_percent() -> None:
    dropped, _ = _run(ALLOWED)
    assert len(dropped) / len(ALLOWED) <= 0.05, f"dropped: {dropped}"


def test_malformed_model_output_dropped_never_raises() -> None:
    g = Guardrail()
    bad = ["", "not json", "{", "[1, 2]", '{"observations": "x"}', '{"observations": [null, 3, {"detail": 1}]}',
           "[" * 5000, json.dumps({"observations": [{"type": 5, "detail": "x"}]}), "```json\n{oops\n```"]
    for text in bad:
        for c in g.parse_model_output(text, SCREEN, 0):
            g.check(c)
    assert g.dropped["malformed"] >= len(bad) - 1
    assert g.passed == 0


def test_fenced_json_accepted_and_cleaned() -> None:
    g = Guardrail()
    text = '```json\n{"observations": [{"type": "screen_content", "detail": "a terminal with key ' \
           'sk-proj-abcdefghijklmnop1234 and mail jane.doe@example.com", "confidence": 0.9}]}\n```'
    (c,) = g.parse_model_output(text, SCREEN, 5)
    out = g.check(c)
    assert out is not None and "sk-proj" not in out.detail and "example.com" not in out.detail
    assert out.confidence == 0.9 and out.time_ms == 5
