"""`make run`: the whole suite on one machine with embedded defaults (no API keys needed).

Starts a private redis-server (AOF, loopback) and every service that exists, under honcho, with
prefixed, coloured output; a `ready` process waits for every health check and prints what to open.
Ctrl-C (or SIGTERM) stops everything; services drain gracefully.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from honcho.manager import Manager

from services.common.server import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = Path(os.environ.get("RUN_DIR", ROOT / ".run"))  # redis data and the dev API key
ORDER = ["vad", "stt", "llm", "tts", "video", "orchestrator", "media"]


def present_services() -> list[str]:
    return [s for s in ORDER if (ROOT / "services" / s / "__main__.py").exists()]


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    (RUN_DIR / "redis").mkdir(exist_ok=True)
    redis_port = int(os.environ.get("RUN_REDIS_PORT", "6390"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
           "REDIS_URL": os.environ.get("REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")}
    manager = Manager()
    if shutil.which("redis-server") is None:
        print("redis-server not found: run `make install-apt` (Debian) or install Redis 7", file=sys.stderr)
        return 1
    manager.add_process("redis", f"redis-server --port {redis_port} --bind 127.0.0.1 --dir {RUN_DIR / 'redis'} "
                                 "--appendonly yes --appendfsync everysec --save ''", env=env)
    services = present_services()
    for svc in services:
        manager.add_process(svc, f"{sys.executable} -m services.{svc}", env=env, cwd=str(ROOT))
    manager.add_process("ready", f"{sys.executable} -m deploy.ready {' '.join(services)}", env=env, cwd=str(ROOT),
                        quiet=False)
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    raise SystemExit(main())
