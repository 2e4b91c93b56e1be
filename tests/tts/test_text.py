"""Text normalisation and segmentation (pure functions, no audio)."""
from __future__ import annotations

import pytest

from services.tts.normalize import normalize
from services.tts.segmenter import Segmenter
from tests.support.wer import wer


@pytest.mark.parametrize("raw, spoken", [
    ("**Great!** Let's *start*.", "Great! Let's start."),
    ("__Nice__ work, ~~not~~ really.", "Nice work, not really."),
    ("- item one\n- item two", "item one. item two"),
    ("## Next question\n1. First\n2) Second", "Next question. First. Second"),
    ("See [the docs](https://x.io/a).", "See the docs."),
    ("Go to https://www.example.com/path?q=1 now", "Go to example dot com now"),
    ("Mail jane.doe@corp.io today", "Mail jane.doe at corp dot io today"),
    ("Use `max_value` here:\n```python\nprint(1)\n```\nDone.", "Use max value here: Done."),
    ("It is O(n log n), e.g. 50% faster & n^2 👍", "It is O of n log n, for example 50 percent faster and n squared"),
    ("It costs $5 vs. $7.", "It costs 5 dollars versus 7 dollars."),
    ("a -> b, x >= 3", "a to b, x greater than or equal to 3"),
    ("> quoted text", "quoted text"),
    ("```\nonly code\n```", ""),
    ("***", ""),
    ("", ""),
])
def test_normalize(raw: str, spoken: str) -> None:
    assert normalize(raw) == spoken


def test_normalize_never_leaves_markup() -> None:
    text = normalize("# **Title**\n* `a_b` | c | [d](e) _f_ \\g {h}")
    assert not set(text) & set("*#`|[]{}\\_"), text


def _stream(seg: Segmenter, text: str, token: int = 3) -> list[str]:
    out: list[str] = []
    for i in range(0, len(text), token):  # tokens that cut words and markup anywhere
        out += seg.push(text[i:i + token])
    return out + seg.flush()


def test_segments_are_sentences_with_a_short_first_piece() -> None:
    pieces = _stream(Segmenter(first_piece_words=3), "Great, thanks for that. So tell me, what did you build there? "
                     "I would love to hear more about it.")
    assert pieces == ["Great, thanks for that.", "So tell me, what did you build there?",
                      "I would love to hear more about it."]
    pieces = _stream(Segmenter(first_piece_words=2), "Okay, great, so let's begin.")
    assert pieces == ["Okay, great,", "so let's begin."]


def test_no_cut_inside_numbers_abbreviations_or_code() -> None:
    text = "Dr. Smith said 3.5 is 1,000 times better, e.g. here! Look:\n```py\nx = 1. y = 2! z\n```\nDone."
    pieces = _stream(Segmenter(first_piece_words=20), text)
    assert pieces == ["Dr. Smith said 3.5 is 1,000 times better, e.g. here!", "Look:",
                      "```py\nx = 1. y = 2! z\n```", "Done."]


def test_markdown_emphasis_stays_with_its_sentence() -> None:
    assert _stream(Segmenter(), "**Great!** Next one.") == ["**Great!**", "Next one."]


def test_long_sentences_are_split() -> None:
    words = " ".join(f"w{i}" for i in range(100))
    pieces = _stream(Segmenter(max_piece_words=40), words + ".")
    assert [len(p.split()) for p in pieces] == [40, 40, 20]
    assert _stream(Segmenter(), "x" * 1500) == ["x" * 600, "x" * 600, "x" * 300]


def test_nothing_is_lost() -> None:
    text = "One. Two, three; four: five!\n- six\n```\nseven. eight\n```\nnine? ten"
    assert " ".join(_stream(Segmenter(first_piece_words=1), text, token=1)).split() == text.split()


def test_wer() -> None:
    assert wer("Hello, there world", "hello there world") == 0
    assert wer("a b c d", "a x c") == 0.5
    assert wer("", "") == 0
