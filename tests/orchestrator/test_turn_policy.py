"""The end-of-turn policy (services/orchestrator/conversation/turn_policy.py): pure rules, English."""
from __future__ import annotations

import pytest

from services.orchestrator.conversation.turn_policy import (
    Decision, TurnPolicyConfig, continuation, decide, is_question)


@pytest.mark.parametrize("text, kind", [
    ("i worked on the payments service and", "conjunction"),
    ("we chose kafka because", "conjunction"),
    ("it was slow so", "conjunction"),
    ("the main problem was um", "filler"),
    ("then we uh", "filler"),
    ("i wrote a", "article"),
    ("we moved the", "article"),
    ("it depends on the size of", "preposition"),
    ("i handed it over to", "preposition"),
    ("what we did is you know", "phrase"),
    ("i'm", "complement"),
    ("i think", "phrase"),
])
def test_answers_ending_in_a_continuation_are_held(text, kind):
    assert continuation(text) == kind
    verdict = decide(0.95, text)  # even when the audio model is sure the turn is over
    assert verdict.decision is Decision.HOLD and verdict.wait_ms == 3000 and kind in verdict.reason


@pytest.mark.parametrize("text", ["we used postgres", "i think so", "yes i did", "that was it", "i logged in",
                                  "it went well", "mhm", "no", "i like that", "and so on", "thank you"])
def test_finished_answers_are_not_continuations(text):
    assert continuation(text) is None


@pytest.mark.parametrize("text, question", [
    ("what do you mean", True), ("how long is the interview", True), ("can you repeat that", True),
    ("is it ok if i use python", True), ("so um could you say that again", True), ("do we have time", True),
    ("what is it made of", True), ("i know what you mean", False), ("it can you know", False),
    ("we can use redis", False), ("yes", False), ("sure?", True),
])
def test_questions_are_recognised_without_punctuation(text, question):
    assert is_question(text) is question


def test_a_question_commits_even_on_a_middling_score_and_even_ending_in_a_preposition():
    assert decide(0.35, "could you repeat the question").decision is Decision.COMMIT
    assert decide(0.4, "what is it made of").decision is Decision.COMMIT
    assert decide(0.1, "could you repeat the question").decision is Decision.HOLD  # model very sure it goes on
    assert decide(None, "what do you mean").decision is Decision.COMMIT
    long_answer = "how we did it was we took the old service split the reads from the writes and moved the"
    assert decide(0.4, long_answer + " cache to redis").decision is Decision.UNDECIDED  # starts like a question


@pytest.mark.parametrize("probability, text, decision, wait", [
    (0.95, "we used postgres", Decision.COMMIT, 0),
    (0.6, "we used postgres for the ledger", Decision.COMMIT, 0),   # model leaning complete + complete text
    (0.6, "yes", Decision.UNDECIDED, 1200),                         # too short for the text to say anything
    (0.6, "it was", Decision.UNDECIDED, 1200),
    (0.4, "we used postgres", Decision.UNDECIDED, 2000),                # the model leans incomplete: a longer wait
    (0.05, "we used postgres", Decision.HOLD, 3000),
    (None, "we used postgres", Decision.UNDECIDED, 1200),           # no turn score: VAD-only fallback
    (0.95, "", Decision.COMMIT, 0),                                 # STT heard nothing: the model decides
])
def test_model_and_transcript_combine(probability, text, decision, wait):
    verdict = decide(probability, text)
    assert (verdict.decision, verdict.wait_ms) == (decision, wait), verdict


def test_other_languages_use_the_model_alone():
    assert decide(0.95, "je pense que", language="fr").decision is Decision.COMMIT
    assert decide(0.95, "and", language="de").decision is Decision.COMMIT
    assert decide(0.95, "and", language="en-US").decision is Decision.HOLD


def test_config_changes_thresholds_and_waits_and_rejects_nonsense():
    cfg = TurnPolicyConfig(commit_probability=0.99, undecided_max_wait_ms=800, hold_max_wait_ms=2000)
    assert decide(0.95, "we used postgres", cfg).decision is Decision.COMMIT  # via text + model >= 0.5
    assert decide(0.95, "yes", cfg).wait_ms == 800
    assert decide(0.95, "and", cfg).wait_ms == 2000
    with pytest.raises(ValueError, match="commit_probability"):
        TurnPolicyConfig(commit_probability=1.5)
    with pytest.raises(ValueError, match="hold_max_wait_ms"):
        TurnPolicyConfig(undecided_max_wait_ms=4000, hold_max_wait_ms=3000)


def test_a_long_answer_commits_only_after_a_longer_pause():
    """A sentence end inside a monologue scores like a finished turn; only the answer's length
    tells them apart, so a long answer's COMMIT waits `long_answer_commit_ms` of silence."""
    cfg = TurnPolicyConfig(long_answer_words=12, long_answer_commit_ms=900)
    short = "we used postgres for the ledger"
    long = "we used postgres for the ledger because the team knew it well and it had the features we needed"
    assert (decide(0.95, short, cfg).decision, decide(0.95, short, cfg).wait_ms) == (Decision.COMMIT, 0)
    verdict = decide(0.95, long, cfg)
    assert (verdict.decision, verdict.wait_ms) == (Decision.COMMIT, 900) and "long answer" in verdict.reason
    assert decide(0.6, long, cfg).wait_ms == 900                       # model + text commit: same delay
    assert decide(0.95, "could you say that again please", cfg).wait_ms == 0  # a question commits now
    assert decide(0.95, long + " and", cfg).decision is Decision.HOLD  # holds are unchanged
    assert decide(0.95, long, TurnPolicyConfig(long_answer_words=12, long_answer_commit_ms=0)).wait_ms == 0  # off
    with pytest.raises(ValueError, match="long_answer"):
        TurnPolicyConfig(long_answer_commit_ms=-1)
