"""The operator CLI against a real orchestrator, and the service's reflection surface."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from services.orchestrator.store.store import InterviewStore
from interview.v1 import common_pb2, interviews_pb2
from tests.orchestrator.conftest import API_KEY
from tests.support.procs import ROOT


def cli(orchestrator, *args: str, key: str = API_KEY) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORCHESTRATOR_ADDR": orchestrator.address, "ORCHESTRATOR_API_KEY": key,
           "OTEL_SDK_DISABLED": "true"}
    return subprocess.run([sys.executable, "-m", "services.orchestrator.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


async def test_cli_create_mode_code_transcript_end(orchestrator, store: InterviewStore):
    created = cli(orchestrator, "create", "--template", "backend-engineer", "--name", "Ada")
    assert created.returncode == 0, created.stderr
    link = created.stdout.strip()
    iid = link.split("/i/")[1].split("#")[0]
    assert "#token=jt1." in link and f"interview {iid} (backend-engineer)" in created.stderr

    assert "mode coding" in cli(orchestrator, "mode", iid, "coding").stdout
    assert "mode conversational" in cli(orchestrator, "code", iid, "run", "--output", "3 passed").stdout
    await store.append_transcript(interviews_pb2.TranscriptEntry(interview_id=iid, entry_id="1", text="hello there",
                                                                 role=common_pb2.ROLE_USER))
    lines = cli(orchestrator, "transcript", iid).stdout.splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["hello there"]
    got = json.loads(cli(orchestrator, "get", iid).stdout)
    assert got["id"] == iid and got["candidate"]["name"] == "Ada"
    assert "ended (completed)" in cli(orchestrator, "end", iid, "--reason", "completed").stdout
    again = cli(orchestrator, "end", iid)
    assert again.returncode == 1 and "FAILED_PRECONDITION" in again.stderr and "already ended" in again.stderr
    denied = cli(orchestrator, "list", key="x" * 32)
    assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr


def test_reflection_lists_the_api_and_env_lists_the_variables(orchestrator):
    with grpc.insecure_channel(orchestrator.address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"interview.v1.Interviews", "interview.v1.Session", "grpc.health.v1.Health"} <= services
        assert db.FindFileContainingSymbol("interview.v1.Interviews").name == "interview/v1/interviews.proto"
    out = subprocess.run([sys.executable, "-m", "services.orchestrator", "env"], cwd=ROOT, capture_output=True,
                         text=True).stdout
    for var in ("REDIS_URL", "ORCHESTRATOR_API_KEYS", "ORCHESTRATOR_JOIN_TOKEN_SECRET", "ORCHESTRATOR_PUBLIC_BASE_URL",
                "ORCHESTRATOR_RETENTION_S"):
        assert var in out
