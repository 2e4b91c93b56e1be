"""A few seconds of the load driver, so it cannot rot (the benchmark itself is `make bench`)."""
from __future__ import annotations

import json

import pytest

from tests.load import tts as driver


@pytest.mark.parametrize("provider", ["offline", "cartesia-fake"])
async def test_load_driver_smoke(capsys, provider: str) -> None:
    await driver.main(["--streams", "2", "--seconds", "2", "--quiet", "--provider", provider])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["errors"] == 0 and summary["concurrent_streams"] == 2 and summary["provider"] == provider
    assert summary["utterances"] >= 2 and summary["audio_s"] > 5
    assert summary["ttfa_p50_ms"] > 0 and summary["rtf"] > 0
