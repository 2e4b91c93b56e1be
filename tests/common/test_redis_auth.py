"""`make run`'s private Redis requires the password it generated: kept in .run/ (0600), never on
redis-server's command line, given to the services in REDIS_URL; unauthenticated clients are refused."""
from __future__ import annotations

import shlex
import stat
import subprocess
import time

import pytest
import redis

from deploy.local import redis_setup
from tests.support.procs import free_port


def test_make_run_redis_requires_the_generated_password(tmp_path):
    port = free_port()
    command, url = redis_setup(tmp_path, port)
    password = (tmp_path / "redis-password").read_text().strip()
    assert len(password) >= 32 and password not in command and f":{password}@" in url
    for name in ("redis-password", "redis.conf"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert redis_setup(tmp_path, port)[1] == url  # the same password on the next `make run`
    proc = subprocess.Popen(shlex.split(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        anonymous = redis.Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                anonymous.ping()
                pytest.fail("an unauthenticated client was served")
            except redis.AuthenticationError:
                break  # NOAUTH: refused
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
        assert redis.Redis.from_url(url).ping()
    finally:
        proc.terminate()
        proc.wait(10)
