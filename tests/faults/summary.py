"""Summarise `make faults` results (JSON lines): runs, p50 and max of each measured number, per fault."""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict


def main(path: str) -> None:
    rows: dict[str, list[dict]] = defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows[row.pop("fault")].append(row)
    print("| fault | runs | measure | p50 | max |\n|---|---|---|---|---|")
    for fault, runs in sorted(rows.items()):
        keys = sorted({k for r in runs for k, v in r.items() if k != "at" and isinstance(v, (int, float))})
        for k in keys:
            vals = [r[k] for r in runs if k in r]
            print(f"| {fault} | {len(vals)} | {k} | {statistics.median(vals):.3f} | {max(vals):.3f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".run/faults.jsonl")
