"""`make loadtest`: every load driver at increasing load, then the full stack with N scripted
candidates; writes the tables into docs/benchmarks.md (between the loadtest markers), the raw
summaries to docs/loadtest/results.json and one PNG per service (latency p50/p99 and server CPU vs
load, the saturation point marked).

    python -m tests.load.loadtest [--scale small|full] [--only vad,tts] [--out docs/loadtest]

`full` takes a few hours on a small machine; `small` (two levels per driver, short runs) proves
the pipeline in ~10 minutes. Each driver starts its own service process; with two or more CPUs
the VAD (the one driver that supports it) pins service and driver to separate cores. Saturation =
the first level whose p50 is over twice the lightest level's, whose p99 is over five times the
lightest level's, or whose run had errors.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- loadtest:begin -->", "<!-- loadtest:end -->"


def _hist(key: str) -> Callable[[dict[str, Any]], dict[str, float]]:
    return lambda s: s.get(key) or {}


def _llm_latency(s: dict[str, Any]) -> dict[str, float]:
    served = next((v for k, v in s.items() if k.startswith("service_") and isinstance(v, dict)), {})
    return served.get("ttft_ms", {})


def _cpu(s: dict[str, Any]) -> float | None:
    """The service's CPU, % of one core, child processes included where the driver counts them
    (stt's decoder workers, video's tesseract)."""
    for key in ("service_tree_cpu_pct", "cpu_pct_with_ocr_children"):
        if isinstance(s.get(key), (int, float)):
            return float(s[key])
    server = s.get("server") or s.get("media") or {}
    value = server.get("cpu_pct")
    return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class Ladder:
    name: str         # the service (plot and table name)
    module: str       # tests.load.<module>
    load: str         # what a level counts
    latency: str      # what the latency is
    args: Callable[[int, float], list[str]]
    levels: dict[str, list[int]]
    read_latency: Callable[[dict[str, Any]], dict[str, float]]


def _pins() -> list[str]:
    return ["--pin-cpu", "1", "--pin-driver", "0"] if (os.cpu_count() or 1) >= 2 else []


LADDERS = [
    Ladder("vad", "vad", "streams", "speech event latency (ms)",
           lambda n, s: ["--streams", str(n), "--seconds", str(s), "--chunk-ms", "32", "--baseline-streams", "0",
                         *_pins(), "--quiet"],
           {"small": [10, 40], "full": [20, 60, 120, 160, 200, 240]}, _hist("event_latency_ms")),
    Ladder("stt", "stt", "streams", "FINALIZE -> final (ms)",
           lambda n, s: ["--provider", "offline", "--streams", str(n), "--seconds", str(s), "--quiet"],
           {"small": [1, 2], "full": [1, 2, 3, 4, 6, 8]}, _hist("final_latency_ms")),
    Ladder("llm", "llm", "requests in flight", "time to first token via the service (ms)",
           lambda n, s: ["--provider", "gemini", "--concurrency", str(n), "--requests", str(max(40, int(n * s * 2))),
                         "--first-delay-ms", "20", "--quiet"],
           {"small": [1, 4], "full": [1, 2, 4, 8, 16, 32]}, _llm_latency),
    Ladder("tts", "tts", "speaking streams", "time to first audio (ms)",
           lambda n, s: ["--provider", "offline", "--streams", str(n), "--seconds", str(s), "--quiet"],
           {"small": [1, 4], "full": [1, 4, 8, 16, 24, 32]}, _hist("ttfa_ms")),
    Ladder("video", "video", "screen shares", "frame -> observation (ms)",
           lambda n, s: ["--provider", "offline", "--streams", str(n), "--seconds", str(s), "--quiet"],
           {"small": [1, 2], "full": [1, 2, 4, 8, 12]}, _hist("analysis_latency_ms")),
    Ladder("media", "media", "WebRTC peers", "audio round trip in -> out (ms)",
           lambda n, s: ["--peers", str(n), "--seconds", str(s), "--no-baseline", "--quiet"],
           {"small": [1, 2], "full": [1, 4, 8, 10, 14]}, lambda s: (s.get("media") or {}).get("rtt_ms") or {}),
    Ladder("full stack", "orchestrator", "scripted candidates", "end of speech -> first reply audio, minus min silence (ms)",
           lambda n, s: ["sessions", "--sessions", str(n), "--seconds", str(s), "--stack", "offline", "--chunk-ms", "20",
                         "--ramp-s", str(min(10, n)), "--quiet"],
           {"small": [1, 2], "full": [1, 2, 4, 8, 12, 16]}, _hist("overhead_ms")),
]
SECONDS = {"small": 10.0, "full": 30.0}


def run_level(ladder: Ladder, n: int, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", f"tests.load.{ladder.module}", *ladder.args(n, seconds)]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds * 6 + 300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    lat = ladder.read_latency(summary)
    return {"level": n, "command": "python -m tests.load." + ladder.module + " " + " ".join(ladder.args(n, seconds)),
            "rc": proc.returncode, "wall_s": round(time.monotonic() - started, 1),
            "p50": lat.get("p50"), "p99": lat.get("p99"), "cpu_pct": _cpu(summary),
            "errors": summary.get("errors", 0 if lines else 1) or (0 if proc.returncode == 0 else 1),
            "stderr_tail": "" if proc.returncode == 0 else proc.stderr[-800:], "summary": summary}


def saturation(rows: list[dict[str, Any]]) -> int | None:
    """The first level past the knee: p50 over twice the lightest level's, p99 over five times
    the lightest level's (the tail goes first), or errors."""
    base = next((r["p50"] for r in rows if r["p50"]), None)
    base99 = next((r["p99"] for r in rows if r["p99"]), None)
    for r in rows:
        if (r["errors"] or (base and r["p50"] and r["p50"] > 2 * base)
                or (base99 and r["p99"] and r["p99"] > 5 * base99)):
            return r["level"]
    return None


def plot(ladder: Ladder, rows: list[dict[str, Any]], sat: int | None, path: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    xs = [r["level"] for r in rows]
    for key, style in (("p50", "o-"), ("p99", "s--")):
        ax.plot(xs, [r[key] if r[key] is not None else float("nan") for r in rows], style, label=f"latency {key}")
    ax.set_xlabel(ladder.load)
    ax.set_ylabel(ladder.latency)
    ax.set_yscale("log")
    cpu = [r["cpu_pct"] for r in rows]
    if any(c is not None for c in cpu):
        ax2 = ax.twinx()
        ax2.plot(xs, [c if c is not None else float("nan") for c in cpu], "^:", color="gray", label="server CPU %")
        ax2.set_ylabel("server CPU (% of one core)")
        ax2.legend(loc="lower right", fontsize=8)
    if sat is not None:
        ax.axvline(sat, color="red", linestyle=":", label=f"saturates at {sat}")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{ladder.name}: latency vs load ({label})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [BEGIN, "", f"## make loadtest ({meta['scale']} scale, {meta['date']})", "",
           f"`python -m tests.load.loadtest --scale {meta['scale']}` on {meta['cpus']} CPUs, load average "
           f"{meta['load_before']} before / {meta['load_after']} after (the machine is shared: other engineers' "
           f"tests ran meanwhile, so absolute numbers are pessimistic). {meta['note']}", ""]
    for name, block in results["ladders"].items():
        plot_name = block["plot"]
        out += [f"### {name}: {block['latency']} vs {block['load']}", "",
                f"![{name}](loadtest/{plot_name})", "",
                f"| {block['load']} | p50 | p99 | server CPU % | errors | command |", "|---|---|---|---|---|---|"]
        for r in block["rows"]:
            out.append(f"| {r['level']} | {_fmt(r['p50'])} | {_fmt(r['p99'])} | {_fmt(r['cpu_pct'])} | {r['errors']} "
                       f"| `{r['command']}` |")
        sat = block["saturates_at"]
        out += ["", f"Saturates at: **{sat}** {block['load']}." if sat is not None
                else f"No saturation within the levels run (up to {block['rows'][-1]['level']}).", ""]
    out.append(END)
    return "\n".join(out) + "\n"


def write_benchmarks(text: str, path: Path) -> None:
    doc = path.read_text()
    if BEGIN in doc and END in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", lambda _m: text, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def replot(out: Path, benchmarks: Path) -> int:
    results = json.loads((out / "results.json").read_text())
    by_name = {ld.name: ld for ld in LADDERS}
    for name, block in results["ladders"].items():
        ladder = by_name[name]
        for row in block["rows"]:
            lat = ladder.read_latency(row["summary"]) if row["summary"] else {}
            row.update(p50=lat.get("p50"), p99=lat.get("p99"), cpu_pct=_cpu(row["summary"]))
        block["saturates_at"] = saturation(block["rows"])
        plot(ladder, block["rows"], block["saturates_at"], out / block["plot"], f"{results['meta']['scale']}-scale run")
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_benchmarks(markdown(results), benchmarks)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser("python -m tests.load.loadtest", description=__doc__.split("\n")[0])
    p.add_argument("--scale", choices=("small", "full"), default=os.environ.get("LOADTEST_SCALE", "full"))
    p.add_argument("--only", default="", help="comma-separated services (vad,stt,llm,tts,video,media,full stack)")
    p.add_argument("--seconds", type=float, default=0.0, help="per level (default: 10 small, 30 full)")
    p.add_argument("--out", default=str(ROOT / "docs" / "loadtest"), help="plots and results.json")
    p.add_argument("--benchmarks", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--note", default="", help="a sentence for the report's header")
    p.add_argument("--replot", action="store_true", help="redo the plots and tables from OUT/results.json, run nothing")
    args = p.parse_args(argv)
    if args.replot:
        return replot(Path(args.out), Path(args.benchmarks))
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    ladders = [ld for ld in LADDERS if not only or ld.name in only]
    seconds = args.seconds or SECONDS[args.scale]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(len(ld.levels[args.scale]) for ld in ladders)
    label = f"{args.scale}-scale run"
    results: dict[str, Any] = {"meta": {
        "scale": args.scale, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 1), "seconds_per_level": seconds,
        "note": args.note}, "ladders": {}}
    done, t0, failed = 0, time.monotonic(), 0
    for ladder in ladders:
        rows = []
        for n in ladder.levels[args.scale]:
            done += 1
            print(f"[{done}/{total}] {ladder.name}: {n} {ladder.load}, {seconds:.0f} s ... "
                  f"(elapsed {time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
            try:
                row = run_level(ladder, n, seconds)
            except subprocess.TimeoutExpired:
                row = {"level": n, "command": ladder.module, "rc": -1, "p50": None, "p99": None, "cpu_pct": None,
                       "errors": 1, "stderr_tail": "timed out", "summary": {}}
            failed += row["rc"] != 0
            rows.append(row)
            print(f"    p50 {_fmt(row['p50'])} ms, p99 {_fmt(row['p99'])} ms, server CPU {_fmt(row['cpu_pct'])} %, "
                  f"errors {row['errors']}" + (f"\n    {row['stderr_tail']}" if row["rc"] else ""),
                  file=sys.stderr, flush=True)
        sat = saturation(rows)
        plot_name = ladder.name.replace(" ", "_") + ".png"
        plot(ladder, rows, sat, out / plot_name, label)
        results["ladders"][ladder.name] = {"load": ladder.load, "latency": ladder.latency, "plot": plot_name,
                                           "saturates_at": sat, "rows": rows}
    results["meta"]["load_after"] = round(os.getloadavg()[0], 1)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_benchmarks(markdown(results), Path(args.benchmarks))
    print(f"wrote {args.benchmarks} and {out}/*.png in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
