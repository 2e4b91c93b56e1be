"""Turn LLM text (markdown, code, URLs, symbols) into words a voice can say.

An LLM writes for a screen: "**Great!**", bullet lists, code fences, links. Read literally, a
synthesiser says "asterisk asterisk great". Each speakable piece goes through `normalize` just
before synthesis; pieces are cut by the segmenter so a code fence is never split between two.
"""
from __future__ import annotations

import re
import unicodedata

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"\b(?:https?://|www\.)([^\s/?#<>()\[\]]+)[^\s<>()\[\]]*", re.I)
_EMAIL = re.compile(r"\b([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
_QUOTE = re.compile(r"^\s*>\s?", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•‣◦]|\d{1,3}[.)])\s+", re.M)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.M)
_EMPHASIS = re.compile(r"(\*\*|__|~~|\*|_)(?=\S)(.+?)(?<=\S)\1")
_BIG_O = re.compile(r"\bO\(\s*([^()]+?)\s*\)")
_POWER = re.compile(r"(\w)\s*\^\s*2\b")
_CURRENCY = re.compile(r"\$(\d[\d,]*(?:\.\d+)?)")
_LINE_END = re.compile(r"(?<=[\w)\]*_`])[ \t]*\n")
_IDENT_UNDERSCORE = re.compile(r"(?<=\w)_(?=\w)")

# Written shorthands an interviewer's sentences use; spoken in full.
_ABBREVIATIONS = {
    r"\be\.g\.": "for example", r"\bi\.e\.": "that is", r"\betc\.": "et cetera",
    r"\bvs\.?(?=\s)": "versus", r"\bw/o\b": "without",
}
# Symbols that carry meaning are spoken; the rest of the markup is dropped.
_SYMBOLS = [
    ("->", " to "), ("=>", " to "), ("→", " to "), ("<=", " less than or equal to "),
    (">=", " greater than or equal to "), ("!=", " not equal to "), ("==", " equals "),
    ("&", " and "), ("%", " percent"), ("+", " plus "), ("=", " equals "), ("~", " about "),
    ("<", " less than "), (">", " greater than "), ("@", " at "), ("°", " degrees"),
    ("×", " times "), ("^", " to the power of "),
]
_DROP = str.maketrans({c: " " for c in "*_`#|[]{}\\"})


def _speak_host(host: str) -> str:
    host = re.sub(r"^www\.", "", host, flags=re.I).rstrip(".,;:")
    return " dot ".join(p for p in host.split(".") if p)


def normalize(text: str) -> str:
    """Speakable form of one piece of LLM text; empty when nothing in it should be spoken."""
    text = _FENCE.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(lambda m: _speak_host(m.group(1)), text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)} at {_speak_host(m.group(2))}", text)
    text = _RULE.sub(" ", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = _LINE_END.sub(".\n", text)  # a line (bullet, heading) is a sentence of its own
    for _ in range(2):  # nested emphasis: ***x*** or **_x_**
        text = _EMPHASIS.sub(r"\2", text)
    text = text.replace("`", "")
    text = _BIG_O.sub(r"O of \1", text)
    text = _POWER.sub(r"\1 squared", text)
    text = _CURRENCY.sub(r"\1 dollars", text)
    for pattern, spoken in _ABBREVIATIONS.items():
        text = re.sub(pattern, spoken, text, flags=re.I)
    text = _IDENT_UNDERSCORE.sub(" ", text)
    text = re.sub(r"#(?=\d)", "number ", text)
    for symbol, spoken in _SYMBOLS:
        text = text.replace(symbol, spoken)
    text = text.translate(_DROP)
    text = "".join(c for c in text if _speakable_char(c))
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return text if re.search(r"\w", text) else ""


def _speakable_char(c: str) -> bool:
    """Letters, digits, punctuation and spaces stay; emoji and other symbols go."""
    category = unicodedata.category(c)
    return not (category.startswith("S") or category in ("Cc", "Cf", "Co", "Cs")) or c in "\n\t"
