"""`python -m services.llm` as real processes: the server, and the chat CLI against it or in-process."""
from __future__ import annotations

import json
import subprocess
import sys

import grpc
from google.protobuf import json_format

from interview.v1 import llm_pb2, llm_pb2_grpc
from tests.llm.conftest import request, small_plan
from tests.support.procs import ROOT, ServiceProcess

ENV = {"LLM_PROVIDERS": "scripted", "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT)}


def run_chat(*args: str, stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.llm", "chat", *args], input=stdin, text=True,
                          capture_output=True, cwd=ROOT, env=env, timeout=60)


def test_served_process_answers_and_the_chat_cli_talks_to_it(tmp_path):
    import os

    env = {**os.environ, **ENV}
    with ServiceProcess("llm", env=ENV) as proc:
        with grpc.insecure_channel(proc.address) as ch:
            responses = list(llm_pb2_grpc.LlmStub(ch).Generate(request(task=llm_pb2.TASK_GREETING), timeout=10))
        assert responses[-1].final.provider == "scripted" and responses[-1].final.text.startswith("Hi")
        out = run_chat("--target", proc.address, "--name", "Ada", stdin="I build APIs.\n/resume\n/quit\n",
                       env=env)
    assert out.returncode == 0, out.stderr
    assert "interviewer> Hi Ada, thanks for joining." in out.stdout
    assert "What was your own part in that work?" in out.stdout  # follow-up to a short answer
    assert "interviewer> Welcome back, Ada. We got cut off. What was your own part in that work?" in out.stdout
    assert "(scripted, first token" in out.stderr


def test_chat_in_process_with_a_plan_file_walks_to_the_end(tmp_path):
    import os

    plan_file = tmp_path / "backend.json"
    plan_file.write_text(json.dumps(json_format.MessageToDict(small_plan())))
    answers = ["I have been building payment systems in Go for five years at a bank."] * 4 + [
        "so I keep a dictionary", "I'm done", "One pass with a dictionary, linear time and space.",
        "I would hash the URL and store it in a key value store with a cache in front of it.",
        "We disagreed on a schema change and settled it with a small experiment measuring both options.",
        "No, that's all."]
    out = run_chat("--template", "backend", "--plans-dir", str(tmp_path), stdin="\n".join(answers) + "\n",
                   env={**os.environ, **ENV})
    assert out.returncode == 0, out.stderr
    assert "[NO_REPLY]" in out.stdout and "ADVANCE_PHASE(coding)" in out.stdout
    assert out.stdout.rstrip().endswith("Goodbye! [ADVANCE_PHASE(wrap-up) END_INTERVIEW]")
    bad = run_chat("--template", "missing", "--plans-dir", str(tmp_path), stdin="", env={**os.environ, **ENV})
    assert bad.returncode != 0 and "no plan template 'missing'" in bad.stderr
