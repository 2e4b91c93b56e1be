"""Language tags compare one way everywhere (provider declarations, stream checks, CreateInterview)."""
from __future__ import annotations

import pytest

from services.common.languages import canonical, listing, matches, supported


@pytest.mark.parametrize(("tag", "expected"), [
    ("en-us", "en-US"), ("EN", "en"), ("zh-hant", "zh-Hant"), ("cmn-latn-pinyin", "cmn-Latn-pinyin"),
    ("es-419", "es-419"), ("en_gb", "en-GB"), ("en-GB-x-RP", "en-GB-x-rp")])
def test_canonical_case(tag: str, expected: str) -> None:
    assert canonical(tag) == expected


@pytest.mark.parametrize(("requested", "declared", "ok"), [
    ("en-us", "en-US", True),   # case
    ("en", "en-US", True),      # a bare language: any region of it
    ("en-GB", "en", True),      # a regional tag: a provider of the bare language
    ("en-GB", "en-US", False),  # siblings
    ("e", "en", False), ("eng", "en", False), ("", "en", False), ("fr-CA", "fr-FR", False)])
def test_matches(requested: str, declared: str, ok: bool) -> None:
    assert matches(requested, declared) is ok


def test_an_empty_declaration_is_any_language_and_listings_are_bounded() -> None:
    assert supported([], "xx-XX") and not supported(["en-US"], "xx-XX")
    assert listing([str(i) for i in range(5)], limit=3) == "0, 1, 2 and 2 more"
