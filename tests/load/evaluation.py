"""Evaluation of a 45-minute interview: wall time and tokens through the real LLM service (Gemini's
SDK against the fake with a modelled latency), the orchestrator's own share, and the offline report.

    python -m tests.load.evaluation [--rounds 3] [--first-ms 3000] [--tokens-per-s 200]

A/B in the same run, alternated: A = the two runs' requests sent straight to the fake through the
SDK (the model's modelled time alone), B = the whole evaluation (document, two runs through the
LLM service, verification, calibration). B/A is our overhead. Also: the evaluation with an instant
model (pure orchestrator CPU), and the offline report (metrics + Markdown + HTML). One JSON line last.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from google import genai
from google.genai import types

from interview.v1 import common_pb2, interviews_pb2, llm_pb2_grpc, session_pb2
from services.common import evaluation_contract as contract
from services.orchestrator.evaluation import interview_metrics as im
from services.orchestrator.evaluation import report
from services.orchestrator.evaluation.document import build
from services.orchestrator.evaluation.evaluator import evaluate, requests
from services.orchestrator.evaluation.html_report import render_html
from services.orchestrator.evaluation.llm_client import grpc_generate
from services.orchestrator.evaluation.material import Material
from tests.fakes.gemini import API_KEY, FakeGemini, Reply
from tests.llm.conftest import LlmServer

BENCH = [["--rounds", "3", "--first-ms", "3000", "--tokens-per-s", "200"]]  # docs/benchmarks.md "evaluation"
WORDS = ("we sharded the orders table by customer id and kept a write ahead log so that replays were idempotent "
         "then the cache sat in front with a short ttl and we invalidated on write which kept reads fast um and "
         "the hard part was the backfill because like the old rows had no tenant column so we ran it in batches").split()


def ts(s: float):  # noqa: ANN201
    from services.orchestrator.store.store import timestamp
    return timestamp(1_765_000_000 + s)


def interview_45min() -> Material:
    """45 questions of ~8 s and answers of ~50 s (~130 words), 20 code events, 10 observations."""
    plan = common_pb2.Plan(name="backend-engineer", title="Backend engineer", role="Backend engineer", version="3")
    for pid, kind in (("intro", 1), ("tech", 2), ("coding", 3), ("design", 4), ("behavioral", 5)):
        plan.phases.add(id=pid, title=pid, kind=kind, time_budget_s=540)
    for rid, desc in (("fundamentals", "Sound understanding of caching, consistency and idempotency"),
                      ("coding", "Correct, readable solution with edge cases considered"),
                      ("design", "Sensible architecture with explicit trade-offs"),
                      ("communication", "Explains reasoning clearly and checks assumptions")):
        plan.rubric.add(id=rid, description=desc, weight=1)
    iv = interviews_pb2.Interview(id="iv_bench0000000000000000", plan=plan, role="Backend engineer",
                                  status=session_pb2.INTERVIEW_ENDED, end_reason="completed",
                                  persona=common_pb2.PERSONA_INTERVIEWER)
    entries, events, t, seq = [], [], 0.0, 0
    for q in range(45):
        phase = plan.phases[q // 9].id
        seq += 1
        entries.append(interviews_pb2.TranscriptEntry(
            sequence=seq, role=common_pb2.ROLE_AGENT, text=f"Question {q + 1}: how would you handle the next part "
            "of this design, and what would you measure first to know it works?", phase_id=phase,
            start_time=ts(t), end_time=ts(t + 8), mode=common_pb2.MODE_CONVERSATIONAL))
        t += 9.5
        seq += 1
        text = " ".join(WORDS[(q * 7 + i) % len(WORDS)] for i in range(130))
        entries.append(interviews_pb2.TranscriptEntry(
            sequence=seq, role=common_pb2.ROLE_USER, text=text, phase_id=phase, start_time=ts(t),
            end_time=ts(t + 50), mode=common_pb2.MODE_CONVERSATIONAL, stt_confidence=0.9))
        t += 50.5
        if q % 9 == 0 and q:
            events.append(interviews_pb2.Event(event_id=f"{int(t * 1000)}-0", time=ts(t), phase_changed=
                                               interviews_pb2.PhaseChanged(from_phase_id=plan.phases[q // 9 - 1].id,
                                                                           to_phase_id=phase)))
    for k in range(20):
        at = 18 * 60 + k * 25
        events.append(interviews_pb2.Event(event_id=f"{at * 1000}-1", time=ts(at), code_event=interviews_pb2.CodeEvent(
            code=common_pb2.CodeSnapshot(kind=2 if k % 5 == 4 else 1, language="python",
                                         content="def merge(a, b):\n" + "    pass\n" * (5 + k)))))
    for k in range(10):
        at = 20 * 60 + k * 40
        events.append(interviews_pb2.Event(event_id=f"{at * 1000}-2", time=ts(at), observation=common_pb2.Observation(
            type="screen_text", detail=f"editor shows def merge(a, b) with {k + 3} lines", confidence=0.8,
            source=common_pb2.VIDEO_SOURCE_SCREEN)))
    return Material.of(iv, entries, sorted(events, key=lambda e: e.time.seconds))


def answer_for(material: Material) -> str:
    """A realistic answer: every criterion scored with four verified citations and a justification."""
    cands = [e for e in material.candidate_entries]
    crit = []
    for n, item in enumerate(material.plan.rubric):
        ev = [{"source": "transcript", "ref": str(e.sequence), "quote": " ".join(e.text.split()[5:13])}
              for e in cands[n * 4:n * 4 + 4]]
        crit.append({"rubric_item_id": item.id, "score": 3, "evidence": ev,
                     "justification": "Explained sharding by customer id and idempotent replays from the write "
                                      "ahead log; trade-offs of the cache ttl were named but not quantified."})
    return json.dumps({"criteria": crit, "strengths": ["Clear on idempotent replays", "Named cache trade-offs"],
                       "concerns": ["Backfill plan lacked a rollback"], "recommended_next_step": "A design deep dive"})


def chunks(text: str, tokens_per_chunk: int = 50) -> list[str]:
    step = tokens_per_chunk * 4
    return [text[i:i + step] for i in range(0, len(text), step)]


async def direct(fake: FakeGemini, material: Material) -> float:
    """A: the same two requests straight to the fake through the SDK (the model's time alone)."""
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=fake.base_url))
    from services.llm.prompting import PromptSet
    from services.llm.providers.gemini import build_config
    from services.llm.providers.base import Settings as PSettings
    prompts = PromptSet("v1")

    async def one(req):  # noqa: ANN001, ANN202
        config, contents = build_config(prompts, req, PSettings("gemini-2.5-flash", 0.2, 8192))
        async for _ in await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents=contents,
                                                                       config=config):
            pass
    t0 = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests(material)))
    took = time.perf_counter() - t0
    await client.aio.aclose()
    return took


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--first-ms", type=float, default=3000.0, help="modelled time to first token")
    p.add_argument("--tokens-per-s", type=float, default=200.0, help="modelled output speed")
    a = p.parse_args()
    material = interview_45min()
    answer = answer_for(material)
    out_chunks = chunks(answer)
    doc = build(material)
    print(f"transcript: {len(material.entries)} entries, {material.duration_s / 60:.1f} min, document "
          f"{len(doc)} chars (~{len(doc) // 4} tokens), answer {len(answer)} chars", file=sys.stderr)
    result: dict = {"entries": len(material.entries), "duration_min": round(material.duration_s / 60, 1),
                    "document_chars": len(doc), "answer_chars": len(answer)}
    async with FakeGemini(first_delay_s=a.first_ms / 1000, chunk_delay_s=50 / a.tokens_per_s) as fake:
        fake.default = Reply(chunks=out_chunks)
        async with LlmServer({"LLM_PROVIDERS": "gemini", "GEMINI_API_KEY": API_KEY,
                              "LLM_GEMINI_BASE_URL": fake.base_url}) as llm:
            import grpc
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{llm.runtime.port}")
            generate = grpc_generate(llm_pb2_grpc.LlmStub(channel))
            usage: list = []

            async def counting(req):  # noqa: ANN001, ANN202
                final = await generate(req)
                usage.append((final.usage.input_tokens, final.usage.output_tokens))
                return final
            A, B = [], []
            for r in range(a.rounds):  # alternated
                A.append(await direct(fake, material))
                t0 = time.perf_counter()
                ev = await evaluate(material, counting)
                B.append(time.perf_counter() - t0)
                print(f"round {r + 1}: A {A[-1]:.2f} s, B {B[-1]:.2f} s", file=sys.stderr)
            assert all(c.status == interviews_pb2.CRITERION_SCORED for c in ev.criteria), ev
            await channel.close()
    result |= {"A_model_only_s": [round(x, 3) for x in A], "B_evaluation_s": [round(x, 3) for x in B],
               "B_over_A_median": round(statistics.median(B) / statistics.median(A), 3),
               "input_tokens_per_run": usage[-1][0], "output_tokens_per_run": usage[-1][1],
               "tokens_per_evaluation": sum(usage[-1]) + sum(usage[-2])}

    from tests.orchestrator_evaluation.material import ScriptedGenerate
    cpu = []
    for _ in range(5):
        t0 = time.perf_counter()
        await evaluate(material, ScriptedGenerate(answer, answer))
        cpu.append(time.perf_counter() - t0)
    offline = []
    for _ in range(5):
        t0 = time.perf_counter()
        m = im.compute(material.entries, material.plan, material.events)
        report.to_markdown(m, material)
        html = render_html(material, ev, m)
        offline.append(time.perf_counter() - t0)
    result |= {"evaluation_instant_model_ms_median": round(statistics.median(cpu) * 1000, 1),
               "offline_report_ms_median": round(statistics.median(offline) * 1000, 1), "html_kb": len(html) // 1024,
               "timeout_ms_default": contract.DEFAULT_TIMEOUT_MS}
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
