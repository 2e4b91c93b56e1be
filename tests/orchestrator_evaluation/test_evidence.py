"""Evidence is verified in code: a citation survives only if this interview holds it."""
from __future__ import annotations

from interview.v1 import common_pb2
from services.orchestrator.evaluation.evidence import quote_in, verify

from tests.orchestrator_evaluation.material import material


def test_a_quote_is_four_consecutive_words_or_the_whole_entry_without_case_or_punctuation():
    text = "Um, so I built a write-through cache, uh, for our payments service!"
    assert quote_in("built a write through cache", text)
    assert quote_in("BUILT A WRITE-THROUGH CACHE", text)
    assert quote_in("for our payments service.", text)
    assert not quote_in("a write cache", text)              # three words, not the whole entry
    assert not quote_in("built a read through cache", text)  # words not in the entry
    assert not quote_in("cache for our payments service", text)  # not consecutive
    assert quote_in("I'm using a dict", "I'm using a dict.")  # the whole (short) entry
    assert quote_in("Yes.", "yes")
    assert quote_in("so I built a ... for our payments service", text)  # each fragment checked
    assert not quote_in("so I built a ... payments", text)             # a fragment of one word
    assert not quote_in("", text) and not quote_in("anything at all here", "")


def test_unverifiable_citations_are_removed_and_counted():
    m = material()
    checked = verify([
        {"source": "transcript", "ref": "2", "quote": "we used idempotency keys"},      # ok
        {"source": "transcript", "ref": "#4", "quote": "The consistency was eventual."},  # ok (# and punctuation)
        {"source": "transcript", "ref": "42", "quote": "we used idempotency keys"},     # no such entry
        {"source": "transcript", "ref": "3", "quote": "How did you keep it consistent?"},  # the interviewer's
        {"source": "transcript", "ref": "2", "quote": "we used a consensus protocol"},  # not said
        {"source": "transcript", "ref": "two", "quote": "we used idempotency keys"},    # not a number
        {"source": "observation", "ref": "9-9", "quote": "terminal shows pytest passing"},  # no such observation
        {"source": "observation", "ref": "3-5", "quote": "terminal shows pytest: all 3"},  # ok
        {"source": "code_event", "ref": "3-0", "quote": "for i, n in enumerate(nums)"},  # ok
        {"source": "code_event", "ref": "2-0", "quote": "for i, n in enumerate(nums)"},  # that edit has no content
        {"source": "email", "ref": "1", "quote": "whatever"},
        {"source": "transcript", "ref": "2", "quote": "we used idempotency keys"},  # duplicate: kept once
        "not even an object",
    ], m)
    assert [e.WhichOneof("ref") for e in checked.evidence] == ["transcript_sequence", "transcript_sequence",
                                                               "observation_id", "code_event_id"]
    assert [e.transcript_sequence for e in checked.evidence[:2]] == [2, 4]
    assert checked.removed == 8
    assert any("does not exist" in r for r in checked.reasons)
    assert any("not the candidate's" in r for r in checked.reasons)


def test_low_stt_confidence_entries_are_marked_not_dropped():
    def low(entries):
        entries[1].stt_confidence = 0.4
        entries[3].stt_confidence = 0.93
    m = material(edit=low)
    checked = verify([{"source": "transcript", "ref": "2", "quote": "we used idempotency keys"},
                      {"source": "transcript", "ref": "4", "quote": "invalidated on write and"},
                      {"source": "transcript", "ref": "6", "quote": "one more thing about caching"}], m)
    assert [(e.transcript_sequence, e.low_stt_confidence) for e in checked.evidence] == [(2, True), (4, False), (6, False)]
    assert checked.removed == 0
    assert m.by_sequence[2].role == common_pb2.ROLE_USER
