"""Start real service processes and a private redis-server on loopback, for tests and load drivers."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from services.common.channels import wait_for_health
from services.common.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """`python -m services.NAME` as a child process on a free loopback port."""

    def __init__(self, service: str, env: dict[str, str] | None = None, port: int | None = None,
                 args: tuple[str, ...] = ()):
        self.service = service
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.args = args
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true",
                    f"{service.upper()}_PORT": str(self.port),
                    f"{service.upper()}_METRICS_PORT": str(self.metrics_port), **(env or {})}
        self._log = tempfile.NamedTemporaryFile(prefix=f"{service}-", suffix=".log", delete=False)
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> "ServiceProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", f"services.{self.service}", *self.args],
                                     cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for_health(self.address, timeout=timeout, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.service} did not start; log:\n{self.logs()[-4000:]}")
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logs(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __enter__(self) -> "ServiceProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class MediaProcess(ServiceProcess):
    """`python -m services.media` as its own process (as deployed): HTTP /healthz, not gRPC health."""

    def start(self, timeout: float = 30.0) -> "MediaProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "services.media"], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"media did not start; log:\n{self.logs()[-4000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RedisServer:
    """A private redis-server with AOF (appendfsync always), like every config we ship."""

    def __init__(self, port: int | None = None, data_dir: str | None = None):
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (make install-apt)")
        self.port = port or free_port()
        self.dir = data_dir or tempfile.mkdtemp(prefix="redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
