"""The offline metrics report on a transcript whose every metric is known by hand."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from interview.v1 import common_pb2, interviews_pb2
from services.orchestrator.evaluation import interview_metrics as im

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts" / "known_properties.json"


def load() -> tuple[list[interviews_pb2.TranscriptEntry], list[interviews_pb2.Event]]:
    data = json.loads(FIXTURE.read_text())
    entries = [json_format.ParseDict(e, interviews_pb2.TranscriptEntry()) for e in data["entries"]]
    events = [json_format.ParseDict(e, interviews_pb2.Event()) for e in data["events"]]
    return entries, events


def plan() -> common_pb2.Plan:
    p = common_pb2.Plan()
    p.phases.add(id="intro", time_budget_s=180)
    p.phases.add(id="coding", time_budget_s=600)
    p.rubric.add(id="fundamentals", description="Sound understanding of caching, consistency and idempotency")
    p.rubric.add(id="design", description="Sensible architecture with explicit trade-offs")
    return p


def test_known_transcript_gives_the_expected_metrics_exactly():
    entries, events = load()
    m = im.compute(entries, plan(), events)
    # speech: candidate 30 + 150 + 7 + 3 + 10 = 200 s; interviewer 4 + 4 + 2 + 6 = 16 s
    assert m.candidate_speech_s == pytest.approx(200.0)
    assert m.interviewer_speech_s == pytest.approx(16.0)
    assert m.talk_ratio == pytest.approx(200 / 216)
    # answers: [2], [4], [6, 7] (consecutive candidate entries), [9]
    assert [a.sequences for a in m.answers] == [[2], [4], [6, 7], [9]]
    assert [round(a.duration_s, 3) for a in m.answers] == [30.0, 150.0, 10.5, 10.0]
    assert [a.long for a in m.answers] == [False, True, False, False]
    # candidate latency: agent end -> candidate start: 5-4, 41-39.5, 193-192, 300-210
    assert m.candidate_latencies_s == pytest.approx([1.0, 1.5, 1.0, 90.0])
    # interviewer latency: candidate end -> agent start: 35.5-35, 190-191 (<0: cut in), 204-203.5
    assert m.interviewer_latencies_s == pytest.approx([0.5, 0.0, 0.5])
    assert m.interviewer_interrupted_candidate == [5]
    assert m.candidate_interrupted_interviewer == [5]
    # fillers: um, uh (entry 2); you know, like (entry 4)
    assert m.fillers == {"um": 1, "uh": 1, "you know": 1, "like": 1}
    assert m.filler_sequences == [2, 4]
    assert m.candidate_words == 18 + 14 + 5 + 5 + 4
    assert m.fillers_per_100_words == pytest.approx(100 * 4 / 46)
    assert m.incomplete == [9]
    cov = {c.rubric_item_id: c for c in m.coverage}
    assert cov["fundamentals"].keywords == ["sound", "understanding", "caching", "consistency", "idempotency"]
    assert cov["fundamentals"].found == {"caching": [6], "consistency": [4], "idempotency": [2]}
    assert cov["fundamentals"].share == pytest.approx(3 / 5)
    assert cov["design"].found == {}
    # phases: intro 0 -> 204 (budget 180: over), coding 204 -> 400 (the last event)
    assert [(p.phase_id, p.seconds, p.over_budget) for p in m.phases] == [("intro", 204.0, True), ("coding", 196.0, False)]
    assert m.code_events == [(215.0, "EDIT"), (290.0, "RUN"), (400.0, "SUBMIT")]
    # coding activity: 204 (agent), 215 edit, 290 run, 300-310 candidate, 400 submit -> gaps >= 60 s
    assert m.silence_stretches == [(215.0, 290.0), (310.0, 400.0)]


def test_an_empty_interview_measures_nothing_and_does_not_fail():
    m = im.compute([], plan(), [])
    assert m.talk_ratio == 0.0 and m.answers == [] and m.fillers_per_100_words == 0.0
    assert [c.found for c in m.coverage] == [{}, {}]


def test_fillers_are_whole_words_only():
    assert im.count_fillers("Umbrella, hummus and uhm") == {}
    assert im.count_fillers("Um, I like it, uh, you know?") == {"um": 1, "like": 1, "uh": 1, "you know": 1}
