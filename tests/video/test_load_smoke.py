"""A few seconds of the load driver, so it cannot rot (the benchmark itself is `make bench`)."""
from __future__ import annotations

import json

from tests.load import video as driver


async def test_load_driver_smoke(capsys) -> None:
    await driver.main(["--streams", "2", "--seconds", "4", "--quiet", "--provider", "gemini-fake"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["errors"] == 0 and summary["streams"] == 2 and summary["provider"] == "gemini-fake"
    assert summary["frames_received"] >= 30 and summary["frames_sampled"] >= 12
    assert 0 < summary["frames_sent_to_model"] <= summary["frames_analyzed"]
    assert "fell_back" not in summary and summary["server"]["cpu_pct"] > 0
