"""The real `python -m services.tts` process (serve, reflection, SIGTERM) and the `say` CLI."""
from __future__ import annotations

import asyncio
import os
import sys
import wave
from pathlib import Path

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from interview.v1 import tts_pb2, tts_pb2_grpc
from tests.fakes.cartesia import FakeCartesia
from tests.support.procs import ROOT, ServiceProcess
from tests.tts.conftest import collect, done_of, request_stream


async def test_service_process_serves_lists_itself_and_drains() -> None:
    proc = await asyncio.to_thread(ServiceProcess("tts", env={"TTS_PROVIDERS": "offline"}).start)
    try:
        with grpc.insecure_channel(proc.address) as channel:
            services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "interview.v1.Tts" in services
        async with grpc.aio.insecure_channel(proc.address) as channel:
            responses = await collect(tts_pb2_grpc.TtsStub(channel).Synthesize(
                request_stream(tts_pb2.TtsConfig(generation_id="p1"), ["Hello from a real process."])))
        assert done_of(responses).segments == 1
    finally:
        assert await asyncio.to_thread(proc.stop) == 0
    assert "tts ready" in proc.logs() and "stopped" in proc.logs()


async def _say(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, Path]:
    out = tmp_path / "out.wav"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.tts", "say", "**Welcome!** Let's get started.", "-o", str(out), *args,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, err.decode(), out


async def test_say_writes_a_wav(tmp_path: Path) -> None:
    rc, err, out = await _say(tmp_path, {"TTS_PROVIDERS": "offline"}, "--rate", "16000")
    assert rc == 0, err
    with wave.open(str(out)) as w:
        assert w.getframerate() == 16000 and w.getnframes() / 16000 > 1.0
    assert "provider offline: \"Welcome! Let's get started.\"" in err


async def test_say_through_cartesia(tmp_path: Path) -> None:
    async with FakeCartesia() as fake:
        rc, err, out = await _say(tmp_path, fake.env(), "--provider", "cartesia")
    assert rc == 0, err
    assert "provider cartesia" in err and os.path.getsize(out) > 24000
    assert [m["continue"] for m in fake.received if "transcript" in m] == [True, True, False]


async def test_say_rejects_bad_input(tmp_path: Path) -> None:
    rc, err, _ = await _say(tmp_path, {"TTS_PROVIDERS": "offline"}, "--voice", "nobody")
    assert rc == 2 and "unknown voice 'nobody'" in err
