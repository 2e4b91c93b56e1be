"""BCP-47 language tags as every service compares them, so a provider's declared languages
(Capabilities), its own stream check and the orchestrator's CreateInterview check agree.

Matching is case-insensitive ("en-us" == "en-US") and by prefix on a subtag boundary in either
direction, never across siblings:
- a bare language asks for any region of it: "en" matches a provider's "en-US" (the provider
  picks its variant, as Deepgram and espeak-ng do);
- a regional tag is served by a provider that declares the bare language: "en-GB" matches "en";
- siblings do not match: "en-GB" is not "en-US" (the offline recogniser's model is US English).
"""
from __future__ import annotations

from collections.abc import Iterable


def canonical(tag: str) -> str:
    """RFC 5646 case conventions: 'EN-us' -> 'en-US', 'zh-hant' -> 'zh-Hant', 'fr-FR-x-Ab' -> 'fr-FR-x-ab'."""
    parts = tag.strip().replace("_", "-").split("-")
    out = [parts[0].lower()]
    private = False
    for part in parts[1:]:
        private = private or part.lower() == "x"
        if not private and len(part) == 2 and part.isalpha():
            out.append(part.upper())
        elif not private and len(part) == 4 and part.isalpha():
            out.append(part.title())
        else:
            out.append(part.lower())
    return "-".join(out)


def matches(requested: str, supported: str) -> bool:
    r = requested.strip().replace("_", "-").lower()
    s = supported.strip().replace("_", "-").lower()
    return bool(r) and (r == s or s.startswith(r + "-") or r.startswith(s + "-"))


def supported(languages: Iterable[str], requested: str) -> bool:
    """Whether `requested` is one of `languages` (an empty list declares any language)."""
    languages = list(languages)
    return not languages or any(matches(requested, s) for s in languages)


def listing(items: Iterable[str], limit: int = 30) -> str:
    """'a, b, c' for an error message, cut at `limit` with the count of the rest."""
    items = list(items)
    head = ", ".join(items[:limit])
    return head + (f" and {len(items) - limit} more" if len(items) > limit else "")
