"""`make bench`: run every service's load driver with the arguments it declares.

A driver module (tests/load/NAME.py) declares `BENCH` (argument lists for the benchmark runs
recorded in docs/benchmarks.md) and optionally `SOAK` (longer runs: `python -m tests.load.bench
--soak`). `make loadtest` is tests/load/loadtest.py: every driver at increasing load, with plots.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

DRIVERS = ["vad", "turns", "stt", "llm", "tts", "video", "orchestrator", "media", "evaluation", "voice_to_voice"]


def main(argv: list[str]) -> int:
    soak = "--soak" in argv
    here = Path(__file__).parent
    failed = 0
    for name in DRIVERS:
        if not (here / f"{name}.py").exists():
            continue
        module = importlib.import_module(f"tests.load.{name}")
        runs = getattr(module, "SOAK" if soak else "BENCH", [])
        for args in runs:
            cmd = [sys.executable, "-m", f"tests.load.{name}", *args]
            print("$ " + " ".join(["python", "-m", f"tests.load.{name}", *args]), flush=True)
            failed += subprocess.run(cmd).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
