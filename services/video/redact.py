"""Secrets and personal data read off a screen never leave the service: e-mail addresses, API keys
and tokens, credentials in assignments, phone and card numbers are replaced before the text cap."""
from __future__ import annotations

import re

from services.video.observations import DETAIL_MAX_CHARS

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\beyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]*"), "[token]"),  # JWT
    (re.compile(r"\b(?:sk|pk|rk)[-_](?:live|test|proj|ant)?[-_]?[A-Za-z0-9_-]{12,}"), "[key]"),  # OpenAI/Stripe/Anthropic
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), "[key]"),  # Google
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{12,}"), "[key]"),  # AWS
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{16,}"), "[token]"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "[token]"),  # Slack
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"), "Bearer [token]"),
    # NAME = "value" where NAME says secret: keep the name, drop the value.
    (re.compile(r"(?i)\b([\w-]*(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|credential)s?[\w-]*)"
                r"(\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;)]+)"), r"\1\2[redacted]"),
    (re.compile(r"\b[A-Fa-f0-9]{32,}\b"), "[key]"),  # long hex secrets
    (re.compile(r"\b[A-Za-z0-9+/_-]{40,}={0,2}"), "[key]"),  # long base64-ish blobs
    (re.compile(r"\b(?:\d[ -]?){13,19}\b"), "[number]"),  # card-like numbers
    (re.compile(r"(?<![\w.])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]\d{3,4}[ .-]\d{3,4}\b"), "[phone]"),
]


def redact(text: str) -> str:
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text


def cap(text: str, limit: int = DETAIL_MAX_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def clean(text: str) -> str:
    """What every observation's detail goes through: redact, then cap (~200 characters)."""
    return cap(redact(text))
