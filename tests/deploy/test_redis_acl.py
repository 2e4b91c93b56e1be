"""The Redis that deploy/k8s ships (redis.conf + the ACL template), run for real: the orchestrator
works as ACL user "orchestrator" (API calls, Lua, the command consumer), a backend drives an
interview through the command stream as "backend" but cannot read interview state, the probe can
only ping, the default user is off, and AOF is on."""
from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from services.orchestrator.api.client import InterviewsClient
from tests.deploy.code_facts import path
from tests.support.procs import ServiceProcess, free_port

PASSWORDS = {"REDIS_ORCHESTRATOR_PASSWORD": "orch-pw-0123456789", "REDIS_BACKEND_PASSWORD": "backend-pw-0123456789",
             "REDIS_PROBE_PASSWORD": "probe-pw-0123456789"}
KEY = "k" * 32


@pytest.fixture
def acl_redis(tmp_path: Path):
    acl = path("k8s", "base", "redis", "users.acl.tmpl").read_text()
    for name, value in PASSWORDS.items():  # what the StatefulSet's sed does at start
        acl = acl.replace(f"@{name}@", value)
    (tmp_path / "users.acl").write_text(acl)
    # The shipped redis.conf, with the pod's paths (/data, /run/redis) moved to this test's directory.
    conf = path("k8s", "base", "redis", "redis.conf").read_text()
    assert "dir /data\n" in conf and "aclfile /run/redis/users.acl\n" in conf
    conf = conf.replace("dir /data\n", f"dir {tmp_path}\n").replace("/run/redis/users.acl", str(tmp_path / "users.acl"))
    (tmp_path / "redis.conf").write_text(conf)
    port = free_port()
    proc = subprocess.Popen(["redis-server", str(tmp_path / "redis.conf"), "--port", str(port), "--bind", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.05)
    yield port, tmp_path
    proc.terminate()
    proc.wait(10)


def connect(port: int, user: str | None, password: str | None) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, username=user, password=password, socket_timeout=5)


def test_each_client_gets_exactly_its_acl(acl_redis, tmp_path):
    port, data_dir = acl_redis
    with pytest.raises(redis.exceptions.AuthenticationError):  # the default user is off
        connect(port, None, None).ping()
    probe = connect(port, "probe", PASSWORDS["REDIS_PROBE_PASSWORD"])
    assert probe.ping()
    with pytest.raises(redis.exceptions.NoPermissionError):
        probe.get("iv:anything")

    orchestrator = ServiceProcess("orchestrator", env={
        "REDIS_URL": f"redis://orchestrator:{PASSWORDS['REDIS_ORCHESTRATOR_PASSWORD']}@127.0.0.1:{port}/0",
        "ORCHESTRATOR_API_KEYS": f"t:{KEY}", "ORCHESTRATOR_DEV_KEY_FILE": str(tmp_path / "key")})
    with orchestrator:
        import asyncio

        async def api() -> str:
            async with InterviewsClient(orchestrator.address, KEY) as client:
                created = await client.create(template="demo", candidate_name="Ada")
                iid = created.interview.id
                await client.get(iid)
                await client.end(iid)
                return iid

        iid = asyncio.run(api())  # store writes, Lua sequences, indexes: all as "orchestrator"

        backend = connect(port, "backend", PASSWORDS["REDIS_BACKEND_PASSWORD"])
        reply_to = "iv:replies:acl-test"
        backend.xadd("iv:commands", {"id": "acl-cmd-1", "type": "create", "reply_to": reply_to,
                                     "request": json.dumps({"template": "demo", "candidate": {"name": "Lin"}})})
        rows = backend.xread({reply_to: "0-0"}, count=1, block=10_000)
        assert rows, "no reply on the reply stream within 10 s"
        reply = json.loads(rows[0][1][0][1][b"reply"])
        assert reply["ok"] is True, reply
        assert backend.xrevrange(f"iv:i:{iid}:events", count=1)  # events: readable
        assert backend.xrange("iv:lifecycle", count=1)
        for forbidden in (lambda: backend.get(f"iv:i:{iid}"), lambda: backend.hgetall(f"iv:i:{iid}"),
                          lambda: backend.xadd(f"iv:i:{iid}:events", {"x": "1"}),
                          lambda: backend.xadd(f"iv:i:{iid}:control", {"x": "1"}), lambda: backend.keys("*"),
                          lambda: backend.flushall()):
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
        orch = connect(port, "orchestrator", PASSWORDS["REDIS_ORCHESTRATOR_PASSWORD"])
        for forbidden in (lambda: orch.flushall(), lambda: orch.config_get("*"), lambda: orch.get("other:key")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
    assert orchestrator.proc is not None and orchestrator.proc.returncode == 0, orchestrator.logs()[-3000:]
    assert "NOPERM" not in orchestrator.logs(), orchestrator.logs()[-3000:]
    assert (data_dir / "appendonlydir").is_dir()  # AOF on, as redis.conf says
