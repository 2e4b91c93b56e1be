"""`report ID -o report.html` and `evaluate ID --format json|markdown` against a real orchestrator
process and a real (offline, scripted) LLM service: the honest metrics report, no keys."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.store.store import InterviewStore
from tests.orchestrator.conftest import API_KEY, orchestrator_env
from tests.orchestrator_evaluation.material import entries_and_events, plan
from tests.support.procs import ROOT, ServiceProcess

pytestmark = pytest.mark.timeout(120)


def cli(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORCHESTRATOR_ADDR": address, "ORCHESTRATOR_API_KEY": API_KEY, "OTEL_SDK_DISABLED": "true"}
    return subprocess.run([sys.executable, "-m", "services.orchestrator.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


async def test_report_and_evaluate_commands_offline(redis_server, tmp_path):
    prefix = f"c{secrets.token_hex(3)}:"
    with ServiceProcess("llm", env={"LLM_PROVIDERS": "scripted"}) as llm, \
            ServiceProcess("orchestrator", env=orchestrator_env(redis_server.url, prefix, LLM_ADDR=llm.address)) as orch:
        r = aioredis.Redis.from_url(redis_server.url)
        store = InterviewStore(r, prefix=prefix, retention_s=3600)
        try:
            async with InterviewsClient(orch.address, API_KEY) as api:
                iid = (await api.create(plan=plan(), candidate_name="Ada")).interview.id
                entries, events = entries_and_events()
                entries[6].text = "<script>alert('x')</script> the cache had a ttl"
                for e in entries:
                    e.interview_id, e.entry_id, e.sequence = iid, f"e{e.sequence}", 0
                    await store.append_transcript(e)
                refused = cli(orch.address, "evaluate", iid)
                assert refused.returncode == 1 and "FAILED_PRECONDITION" in refused.stderr
                await api.end(iid, "completed")
        finally:
            await r.aclose()
        out = tmp_path / "report.html"
        done = cli(orch.address, "report", iid, "-o", str(out))
        assert done.returncode == 0, done.stderr
        html = out.read_text()
        assert "Metrics report (no model judgement)" in html and "Advisory" in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html and "<script>" not in html
        assert 'id="t-9"' in html
        md = cli(orch.address, "evaluate", iid, "--format", "markdown")
        assert md.returncode == 0 and "**Not a judgement.**" in md.stdout and "offline provider" in md.stdout
        data = json.loads(cli(orch.address, "evaluate", iid, "--format", "json").stdout)
        assert data["kind"] == "EVALUATION_METRICS_REPORT" and data["advisory"] is True
        assert data["status"] == "EVALUATION_DONE" and data["interview_id"] == iid
        forced = json.loads(cli(orch.address, "evaluate", iid, "--format", "json", "--force").stdout)
        assert forced["supersedes"] == data["evaluation_id"] and forced["evaluation_id"] != data["evaluation_id"]
