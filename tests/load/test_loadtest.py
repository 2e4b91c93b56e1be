"""make loadtest's report: the saturation rule, the plot and the benchmarks.md section it rewrites."""
from __future__ import annotations

from tests.load import loadtest


def rows(*p50s, errors_at=None):  # type: ignore[no-untyped-def]
    return [{"level": i + 1, "p50": p, "p99": p * 2 if p else None, "cpu_pct": 10.0 * (i + 1),
             "errors": 1 if errors_at == i + 1 else 0, "command": f"python -m tests.load.vad --streams {i + 1}"}
            for i, p in enumerate(p50s)]


def test_saturation_is_the_first_level_past_twice_the_lightest_p50_five_times_its_p99_or_with_errors():
    assert loadtest.saturation(rows(10.0, 15.0, 21.0, 50.0)) == 3
    assert loadtest.saturation(rows(10.0, 12.0, 14.0)) is None
    assert loadtest.saturation(rows(10.0, 12.0, 14.0, errors_at=2)) == 2
    tail = rows(10.0, 11.0, 12.0)
    tail[2]["p99"] = 120.0  # 6x the lightest level's p99 of 20
    assert loadtest.saturation(tail) == 3


def test_the_report_replaces_its_own_section_and_draws_a_png(tmp_path):
    ladder = loadtest.LADDERS[0]
    r = rows(10.0, 30.0)
    loadtest.plot(ladder, r, 2, tmp_path / "vad.png", "small-scale run")
    assert (tmp_path / "vad.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = {"meta": {"scale": "small", "date": "d", "cpus": 2, "load_before": 1.0, "load_after": 2.0, "note": "n"},
               "ladders": {"vad": {"load": "streams", "latency": "ms", "plot": "vad.png", "saturates_at": 2, "rows": r}}}
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nkept\n")
    loadtest.write_benchmarks(loadtest.markdown(results), doc)
    loadtest.write_benchmarks(loadtest.markdown(results), doc)  # a second run replaces, not appends
    text = doc.read_text()
    assert text.count(loadtest.BEGIN) == 1 and "kept" in text
    assert "Saturates at: **2** streams." in text and "![vad](loadtest/vad.png)" in text
