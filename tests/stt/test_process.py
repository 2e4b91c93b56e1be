"""The service as operators run it: `python -m services.stt` (serve, reflection, SIGTERM) and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from interview.v1 import stt_pb2_grpc
from tests.stt.support import SPEECH, answers, audio, cfg, fin, speech
from tests.support.procs import ROOT, ServiceProcess


async def test_served_process_lists_services_transcribes_and_drains_on_sigterm() -> None:
    with ServiceProcess("stt", env={"STT_OFFLINE_WARM_DECODERS": "1"}) as proc:
        with grpc.insecure_channel(proc.address) as channel:
            services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert "interview.v1.Stt" in services and "grpc.health.v1.Health" in services
        async with grpc.aio.insecure_channel(proc.address) as channel:
            requests = [cfg(), *audio(speech("goforward_16k.wav")), fin("u")]

            async def gen():  # type: ignore[no-untyped-def]
                for r in requests:
                    yield r

            rs = [r async for r in stt_pb2_grpc.SttStub(channel).Recognize(gen(), timeout=60)]
        assert "forward" in answers(rs)["u"].text
        assert proc.stop() == 0


def test_cli_transcribes_a_file_at_another_rate_and_prints_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from services.common.audio import resample, write_wav

    wav = tmp_path / "go_44k.wav"
    write_wav(wav, resample(speech("goforward_16k.wav"), 16000, 44100), 44100)
    out = subprocess.run([sys.executable, "-m", "services.stt", "transcribe", str(wav), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    (line,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert line["finalize_id"] == "end" and "forward" in line["text"]
    assert 0.3 < line["words"][0]["start_s"] < 1.0  # offsets in seconds of the file


def test_cli_plain_text() -> None:
    out = subprocess.run([sys.executable, "-m", "services.stt", "transcribe", str(SPEECH / "forever_16k.wav")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "forever" in out.stdout
