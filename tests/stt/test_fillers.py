"""Hesitations are words marked as fillers (both providers spell them alike), so turn-taking can
hold on "um"; punctuation from a provider does not hide one."""
from services.stt.providers.base import is_filler


def test_hesitations_are_fillers_and_words_are_not() -> None:
    assert all(is_filler(w) for w in ["um", "Uh,", "umm...", "er", "hmm?"])
    assert not any(is_filler(w) for w in ["a", "and", "mhm", "human", "umbrella", ""])
