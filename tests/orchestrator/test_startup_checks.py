"""Start-up refuses the development fallbacks where they would break a deployment: exit 2 with a
message naming the variable, instead of crash-looping on a read-only filesystem or serving join
links the other replicas cannot verify. Real `python -m services.orchestrator` processes."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.support.procs import ROOT, ServiceProcess, free_port

KEYS = "ci:" + "k" * 32
SECRET = "s" * 32


def run_orchestrator(tmp_path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true", "ORCHESTRATOR_PORT": str(free_port()),
            "ORCHESTRATOR_DEV_KEY_FILE": str(tmp_path / "dev-key"), "REDIS_URL": "redis://127.0.0.1:1/0"}
    for name in ("ORCHESTRATOR_API_KEYS", "ORCHESTRATOR_JOIN_TOKEN_SECRET", "ORCHESTRATOR_HOST"):
        full.pop(name, None)
    full.update(env)
    return subprocess.run([sys.executable, "-m", "services.orchestrator"], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=60)


def test_beyond_loopback_without_api_keys_exits_2_and_writes_no_key_file(tmp_path):
    done = run_orchestrator(tmp_path, ORCHESTRATOR_HOST="0.0.0.0", ORCHESTRATOR_JOIN_TOKEN_SECRET=SECRET)
    assert done.returncode == 2, done.stderr
    assert "ORCHESTRATOR_API_KEYS: required when serving on 0.0.0.0" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "dev-key").exists()


def test_beyond_loopback_without_signing_secret_exits_2(tmp_path):
    """Two replicas with ephemeral keys would each reject the other's join links: refuse to start."""
    done = run_orchestrator(tmp_path, ORCHESTRATOR_HOST="0.0.0.0", ORCHESTRATOR_API_KEYS=KEYS)
    assert done.returncode == 2, done.stderr
    assert "ORCHESTRATOR_JOIN_TOKEN_SECRET: required when serving on 0.0.0.0" in done.stderr
    assert "other replicas reject them" in done.stderr and "Traceback" not in done.stderr


def test_beyond_loopback_lists_every_missing_secret_at_once(tmp_path):
    done = run_orchestrator(tmp_path, ORCHESTRATOR_HOST="0.0.0.0")
    assert done.returncode == 2
    assert "ORCHESTRATOR_API_KEYS: required" in done.stderr and "ORCHESTRATOR_JOIN_TOKEN_SECRET: required" in done.stderr


def test_unwritable_dev_key_file_exits_2_naming_the_file(tmp_path):
    # A path under a regular file cannot be created even by root (as a read-only root fs refuses it).
    (tmp_path / "not-a-dir").write_text("")
    key_file = tmp_path / "not-a-dir" / "orchestrator-api-key"
    done = run_orchestrator(tmp_path, ORCHESTRATOR_DEV_KEY_FILE=str(key_file))
    assert done.returncode == 2, done.stderr
    assert f"ORCHESTRATOR_DEV_KEY_FILE={key_file}" in done.stderr and "set ORCHESTRATOR_API_KEYS" in done.stderr
    assert "Traceback" not in done.stderr


def test_beyond_loopback_with_keys_and_secret_serves(tmp_path):
    proc = ServiceProcess("orchestrator", env={"ORCHESTRATOR_HOST": "0.0.0.0", "ORCHESTRATOR_API_KEYS": KEYS,
                                               "ORCHESTRATOR_JOIN_TOKEN_SECRET": SECRET,
                                               "ORCHESTRATOR_DEV_KEY_FILE": str(tmp_path / "dev-key"),
                                               "REDIS_URL": "redis://127.0.0.1:1/0"})
    with proc:
        pass
    assert proc.proc is not None and proc.proc.returncode == 0, proc.logs()[-2000:]
    assert not (tmp_path / "dev-key").exists()
