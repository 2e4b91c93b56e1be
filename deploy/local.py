"""`make run`: the whole suite on one machine with embedded defaults (no API keys needed).

Starts a private redis-server (AOF, loopback, a generated password kept in .run/ with mode 0600)
and every service that exists, under honcho, with
prefixed, coloured output; a `ready` process waits for every health check and prints what to open.
Ctrl-C (or SIGTERM) stops everything; services drain gracefully.
"""
from __future__ import annotations

import os
import secrets
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


def _private_file(path: Path, content: str) -> None:
    """Write `content` readable by this user only (created 0600, never world-readable for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    path.chmod(0o600)


def redis_setup(run_dir: Path, port: int) -> tuple[str, str]:
    """(redis-server command, REDIS_URL) for the private Redis of `make run`.

    The password is generated once and kept in run_dir/redis-password (0600); it reaches
    redis-server through a 0600 config file, never its command line (which `ps` shows to every
    local user), and the services through REDIS_URL. AOF with appendfsync always (README,
    "Durability": an acknowledged transcript entry is on disk)."""
    (run_dir / "redis").mkdir(parents=True, exist_ok=True)
    pw_file = run_dir / "redis-password"
    if not pw_file.exists():
        _private_file(pw_file, secrets.token_urlsafe(32) + "\n")
    password = pw_file.read_text().strip()
    conf = run_dir / "redis.conf"
    _private_file(conf, f"requirepass {password}\n")
    command = (f"redis-server {conf} --port {port} --bind 127.0.0.1 --dir {run_dir / 'redis'} "
               "--appendonly yes --appendfsync always --save ''")
    return command, f"redis://:{password}@127.0.0.1:{port}/0"


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    RUN_DIR.chmod(0o700)
    redis_port = int(os.environ.get("RUN_REDIS_PORT", "6390"))
    redis_command, redis_url = redis_setup(RUN_DIR, redis_port)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
           "REDIS_URL": os.environ.get("REDIS_URL", redis_url)}
    manager = Manager()
    if shutil.which("redis-server") is None:
        print("redis-server not found: run `make install-apt` (Debian) or install Redis 7", file=sys.stderr)
        return 1
    manager.add_process("redis", redis_command, env=env)
    services = present_services()
    for svc in services:
        manager.add_process(svc, f"{sys.executable} -m services.{svc}", env=env, cwd=str(ROOT))
    manager.add_process("ready", f"{sys.executable} -m deploy.ready {' '.join(services)}", env=env, cwd=str(ROOT),
                        quiet=False)
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    raise SystemExit(main())
