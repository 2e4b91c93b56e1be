"""Print how many fuzz cases each endpoint ran (docs/reliability.md records them); with
FUZZ_REPORT=path also write them as JSON."""
from __future__ import annotations

import json
import os

import pytest

from tests.fuzz.protofuzz import CASES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CASES:
        return
    terminalreporter.section("fuzz cases run per endpoint")
    for endpoint, n in sorted(CASES.items()):
        terminalreporter.write_line(f"{endpoint:<40} {n}")
    if path := os.environ.get("FUZZ_REPORT"):
        with open(path, "w") as f:
            json.dump(dict(sorted(CASES.items())), f, indent=1)
