"""A few seconds of the load driver, so `make bench` cannot rot (the benchmark itself is not a test)."""
from __future__ import annotations

from tests.load import stt as driver


async def test_load_driver_smoke_deepgram_fake() -> None:
    summary = await driver.main(["--provider", "deepgram-fake", "--streams", "2", "--seconds", "4", "--quiet"])
    assert summary["errors"] == 0, summary.get("first_errors")
    assert summary["utterances"] >= 2
    assert summary["final_latency_ms"]["count"] >= 1 and summary["direct_final_latency_ms"]["count"] >= 1
    assert "added_latency_p50_ms" in summary and "rtf_cpu" in summary
