"""The offline report (Markdown + JSON, plainly not a judgement) and COACH feedback from the same
measurements: specific lines, sequence numbers, never a score."""
from __future__ import annotations

import json

from interview.v1 import common_pb2
from services.orchestrator.evaluation import coaching, report
from services.orchestrator.evaluation import interview_metrics as im

from tests.orchestrator_evaluation.material import material


def metrics():
    m = material()
    return m, im.compute(m.entries, m.plan, m.events)


def test_the_json_report_holds_every_measurement_and_says_it_is_not_a_judgement():
    _, m = metrics()
    data = json.loads(json.dumps(report.to_dict(m)))
    assert data["not_a_judgement"] == im.NOT_A_JUDGEMENT
    assert data["talk_ratio"] == round(200 / 216, 3)
    assert [a["over_2_min"] for a in data["answers"]] == [False, True, False, False]
    assert data["fillers"]["total"] == 4 and data["fillers"]["sequences"] == [2, 4]
    cov = {c["rubric_item_id"]: c for c in data["rubric_keyword_coverage"]}
    assert cov["coding"]["keywords"] == ["dict", "two sum"] and cov["coding"]["found"] == {"dict": [9]}
    assert data["coding"]["silence_stretches"] == [{"from_s": 215.0, "to_s": 290.0}, {"from_s": 310.0, "to_s": 400.0}]
    assert data["interruptions"]["candidate_interrupted_interviewer"] == [5]
    assert data["incomplete_entries"] == [9]


def test_the_markdown_report_is_readable_and_not_a_judgement():
    mat, m = metrics()
    md = report.to_markdown(m, mat)
    assert "**Not a judgement.**" in md
    assert "Talk ratio (candidate's share of speech): 93%" in md
    assert "over 2 minutes: 2:30 at #4" in md
    assert "'um' ×1" in md and "entries #2, #4" in md
    assert "| fundamentals | 3/5 (caching, consistency, idempotency) |" in md
    assert "| intro | 3:24 (over) | 3:00 |" in md
    assert "- 4:50 RUN" in md and "silence (no speech or edits) 3:35–4:50" in md
    for word in ("score", "hire", "strong candidate"):
        assert word not in md.lower()


def test_feedback_between_answers_is_specific_and_never_a_score():
    long = im.Answer([12], 0.0, 180.0, 400, "intro")
    lines = coaching.after_answer(long, {"um": 14, "like": 2})
    assert lines == ["That answer ran 3:00; aim for under 2 minutes: lead with the point, then offer detail.",
                     "You said 'um' 14 times — try pausing instead."]
    assert coaching.after_answer(im.Answer([3], 0.0, 40.0, 80, "intro"), {"um": 1}) == []
    assert coaching.after_answer(im.Answer([3], 0.0, 3.0, 5, "intro"), {})[0].startswith("That answer was 5 words")


def test_the_end_of_practice_summary_gives_three_improvements_tied_to_sequences():
    mat, m = metrics()
    top = coaching.summary(m)
    assert len(top) == 3
    assert top[0].title == "Shorter answers" and top[0].sequences == [4]
    titles = [i.title for i in top]
    assert "Fewer filler words" in titles and "Start answering sooner" in titles
    fillers = next(i for i in top if i.title == "Fewer filler words")
    assert fillers.sequences == [2, 4] and "8.7 fillers per 100 words" in fillers.detail
    slow = next(i for i in top if i.title == "Start answering sooner")
    assert slow.sequences == [9]  # 90 s after the coding prompt
    md = coaching.summary_markdown(m)
    assert md.count("\n1. ") + md.count("\n2. ") + md.count("\n3. ") == 3 and "not a score" in md
    assert "#4" in md


def test_a_quiet_clean_practice_gets_no_invented_improvements():
    empty = im.compute([], common_pb2.Plan(), [])
    assert coaching.summary(empty) == []
    assert "Nothing in the measurements stands out" in coaching.summary_markdown(empty)


def test_the_coach_request_carries_the_computed_lines_as_data():
    _, m = metrics()
    lines = coaching.after_answer(m.answers[1], m.fillers)
    req = coaching.feedback_request(lines, m, "iv_x")
    doc = json.loads(req.document)
    assert doc["feedback"] == lines and lines[0].startswith("That answer ran 2:30")
    assert doc["metrics"]["not_a_judgement"] and req.task == 8 and req.persona == common_pb2.PERSONA_COACH


def test_the_end_of_practice_summary_lists_the_notes_given_between_answers():
    from interview.v1 import interviews_pb2
    from services.orchestrator.evaluation.evaluator import coaching_summary
    mat = material(persona=common_pb2.PERSONA_COACH)
    assert "Notes given between answers" not in coaching_summary(mat).report_markdown
    for seq, text, spoken in ((4, "That answer ran about 3 minutes; aim for under 2.", True),
                              (6, "You started answering before I had finished.", False)):
        mat.events.append(interviews_pb2.Event(coaching=interviews_pb2.CoachingNote(
            text=text, metric="m", sequences=[seq], spoken=spoken)))
    ev = coaching_summary(mat)
    assert "2 notes given between answers" in ev.summary
    assert ("## Notes given between answers\n\n- #4: That answer ran about 3 minutes; aim for under 2.\n"
            "- #6: You started answering before I had finished. (not heard: the candidate spoke over it)\n"
            in ev.report_markdown)
