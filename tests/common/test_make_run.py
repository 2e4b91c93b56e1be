"""`make run` (the README's first command) brings every service to SERVING, creates the demo
interview and prints its link; Ctrl-C leaves no process behind. Every port is moved off the
defaults so the test never meets a developer's own `make run`."""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time

import psutil
import pytest

from services.common.server import DEFAULT_PORTS
from tests.support.procs import ROOT, free_port


def _env(tmp_path) -> dict[str, str]:
    env = {**os.environ, "RUN_DIR": str(tmp_path / "run"), "RUN_REDIS_PORT": str(free_port()),
           "ORCHESTRATOR_DEV_KEY_FILE": str(tmp_path / "run" / "api-key"), "OTEL_SDK_DISABLED": "true",
           "MEDIA_PORT": str(free_port()), "MEDIA_METRICS_PORT": str(free_port()), "MEDIA_ICE_LOOPBACK_ONLY": "true"}
    env.pop("REDIS_URL", None)
    for service in DEFAULT_PORTS:
        port = free_port()
        env[f"{service.upper()}_PORT"] = str(port)
        env[f"{service.upper()}_ADDR"] = f"127.0.0.1:{port}"
        env[f"{service.upper()}_METRICS_PORT"] = str(free_port())
    return env


def test_make_run_serves_everything_prints_the_link_and_ctrl_c_leaves_nothing(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT).returncode != 0:
        pytest.skip("the project's .venv is not installed and current (run `make install`): "
                    "`make run` would first install for minutes")
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out: list[str] = []
    descendants: list[psutil.Process] = []
    try:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
        reader.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("#token=" in line for line in out):
            try:
                out.append(lines.get(timeout=1))
            except queue.Empty:
                if proc.poll() is not None:
                    break
        text = "".join(out)
        assert "services SERVING" in text, text[-4000:]
        assert f"all {len(DEFAULT_PORTS) + 1} services SERVING" in text, text[-4000:]
        assert "Open this link" in text, text[-4000:]
        assert "/metrics" in text
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert len(descendants) >= len(DEFAULT_PORTS) + 2  # every service, redis, the supervisor
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    time.sleep(0.5)
    alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left behind after Ctrl-C: {[' '.join(p.cmdline()) for p in alive]}"
