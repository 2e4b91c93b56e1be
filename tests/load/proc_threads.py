"""CPU per thread of a running process, for finding where a service's time goes.

    python -m tests.load.proc_threads PID SECONDS [--per-unit N]

Reads /proc/PID/task/*/stat before and after SECONDS; prints each thread group (the kernel thread
name, e.g. gRPC's `event_engine`; Python threads are listed by tid, `main` is the event loop) as
% of one core and context switches per second. With --per-unit N (e.g. windows per second) it also
prints microseconds of CPU per unit, which stays comparable when the load rate differs.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def snapshot(pid: int) -> dict[str, tuple[str, float, int]]:
    """tid -> (group name, CPU seconds, context switches)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[str, float, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        switches = sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
        name = ("main" if tid == str(pid) else f"{comm}-{tid}") if comm.startswith("python") else comm
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / tick, switches)
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.load.proc_threads", description=__doc__.split("\n")[0])
    p.add_argument("pid", type=int)
    p.add_argument("seconds", type=float)
    p.add_argument("--per-unit", type=float, default=0.0, help="units per second (e.g. windows/s) for us/unit")
    args = p.parse_args()
    before, t0 = snapshot(args.pid), time.monotonic()
    time.sleep(args.seconds)
    after, dt = snapshot(args.pid), time.monotonic() - t0
    groups: dict[str, list[float]] = {}
    for tid, (name, cpu, switches) in after.items():
        cpu0, sw0 = before[tid][1:] if tid in before else (0.0, 0)
        g = groups.setdefault(name, [0.0, 0.0, 0])
        g[0] += cpu - cpu0
        g[1] += switches - sw0
        g[2] += 1
    for name, (cpu, switches, n) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        per = f" {1e6 * cpu / dt / args.per_unit:6.1f} us/unit" if args.per_unit else ""
        print(f"{name:24s} threads {n:3d}  cpu {100 * cpu / dt:5.1f} %  ctx switches/s {switches / dt:7.0f}{per}")


if __name__ == "__main__":
    main()
