"""`python -m services.media` as a real process: serves health, and SIGTERM closes every peer
(each session gets Leave{shutdown}) before a clean exit."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile

import aiohttp
import numpy as np

from services.media.client import ClientPeer, WavTrack
from tests.fakes.session import FakeSession
from tests.media.helpers import until
from tests.support.procs import ROOT, free_port


async def test_process_serves_health_and_sigterm_closes_every_peer(session_addr: str, fake: FakeSession) -> None:
    port, metrics_port = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="media-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "services.media"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true",
                                 "MEDIA_PORT": str(port), "MEDIA_METRICS_PORT": str(metrics_port),
                                 "ORCHESTRATOR_ADDR": session_addr,
                                 "MEDIA_ICE_LOOPBACK_ONLY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async def healthy() -> bool:
                try:
                    async with http.get(f"{url}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False
            for _ in range(200):
                if await healthy():
                    break
                assert proc.poll() is None, open(log.name).read()
                await asyncio.sleep(0.05)
        peers = []
        for _ in range(2):
            iid, token = fake.create()
            peer = ClientPeer(url, iid, WavTrack(np.zeros(0, np.int16), 48000), token=token)
            await peer.connect()
            await peer.wait_connected()
            peers.append(peer)
        await until(lambda: len(fake.sessions) == 2)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 15)
        assert code == 0, open(log.name).read()[-3000:]
        for rec in fake.sessions:
            await until(rec.ended.is_set, timeout=3)
            assert rec.leave == "shutdown"
        logs = open(log.name).read()
        assert "jt1." not in logs  # join tokens never reach a log
        for peer in peers:
            await peer.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
