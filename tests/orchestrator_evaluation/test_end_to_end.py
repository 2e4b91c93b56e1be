"""End to end: a scripted candidate speaks real recordings into the conversation loop (real VAD,
STT, TTS subprocesses; the real LLM service with Gemini's SDK against the fake), the interview is
ended through the API, the evaluation job runs from the lifecycle stream, and the stored evaluation
cites only real candidate entries. The last answer is a recording drowned in white noise: its
entry's STT confidence (the real offline recogniser's) is low, and the evidence citing it is
marked, while the score stays what the model gave."""
from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from interview.v1 import common_pb2, interviews_pb2, llm_pb2_grpc
from services.orchestrator.evaluation.evaluator import Settings
from services.orchestrator.evaluation.jobs import DONE, EvaluationJobs
from services.orchestrator.evaluation.llm_client import grpc_generate
from tests.fakes.gemini import API_KEY, FakeGemini, Reply
from tests.llm.conftest import LlmServer
from tests.orchestrator.session_support import Candidate, Orchestrator, speech
from tests.support.noise import with_noise
from tests.support.procs import ServiceProcess

pytestmark = pytest.mark.timeout(120)
LINE = re.compile(r'^#(\d+) candidate .*? ("(?:[^"\\]|\\.)*")$')


def evaluator_answer(body: dict) -> Reply:
    """What a model following the instructions might say: cite each candidate line whole, plus one
    made-up citation that verification must remove."""
    if "responseSchema" not in body.get("generationConfig", {}):
        return Reply(chunks=["Thanks, that helps. ", "What would you try next?"])
    document = body["contents"][0]["parts"][0]["text"]
    cited = [{"source": "transcript", "ref": m.group(1), "quote": json.loads(m.group(2))}
             for m in map(LINE.match, document.splitlines()) if m and json.loads(m.group(2)).strip()]
    cited.append({"source": "transcript", "ref": "999", "quote": "I designed the whole payments platform"})
    ids = body["generationConfig"]["responseSchema"]["properties"]["criteria"]["items"]["properties"][
        "rubric_item_id"]["enum"]
    answer = {"criteria": [{"rubric_item_id": i, "score": 2, "justification": "Brief answers.", "evidence": cited}
                           for i in ids],
              "strengths": ["Answered every question"], "concerns": ["Answers were very short"],
              "recommended_next_step": "A longer technical screen"}
    return Reply(chunks=[json.dumps(answer)])


def rubric_plan() -> common_pb2.Plan:
    from tests.orchestrator.session_support import plan
    p = plan()
    p.rubric.add(id="communication", description="Answers the question that was asked")
    p.rubric.add(id="depth", description="Goes beyond the first answer")
    return p


async def test_a_spoken_interview_ends_and_its_stored_evaluation_cites_only_real_entries(redis_server):
    # a FINALIZE answered by deadline carries interim text with no confidence (0 = unknown): wait
    # for the recogniser's finals, however loaded the machine
    procs = [ServiceProcess("vad"), ServiceProcess("stt", env={"STT_FINALIZE_DEADLINE_MS": "15000"}),
             ServiceProcess("tts", env={"TTS_PROVIDERS": "offline"})]
    for p in procs:
        p.start()
    try:
        async with FakeGemini() as fake:
            fake.responder = evaluator_answer
            async with LlmServer({"LLM_PROVIDERS": "gemini,scripted", "GEMINI_API_KEY": API_KEY,
                                  "LLM_GEMINI_BASE_URL": fake.base_url}) as llm:
                addr = f"127.0.0.1:{llm.runtime.port}"
                orch = await Orchestrator(redis_server.url, {"vad": procs[0].address, "stt": procs[1].address,
                                                             "llm": addr, "tts": procs[2].address}).start()
                jobs = EvaluationJobs(orch.store, grpc_generate(llm_pb2_grpc.LlmStub(orch.channels[2])), "e2e",
                                      settings=Settings(min_candidate_speech_s=1.0), poll_s=0.1)
                jobs.start()
                try:
                    await asyncio.sleep(0.3)  # the consumer group exists before the end
                    iid, token = await orch.create(plan=rubric_plan())
                    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
                        await cand.wait_played(await cand.wait_generations(1, timeout=10))
                        await cand.say(speech("goforward_16k.wav"))
                        await cand.wait_played(await cand.wait_generations(2, timeout=20))
                        await cand.say(speech("forever_16k.wav"))
                        await cand.wait_played(await cand.wait_generations(3, timeout=20))
                        await cand.say(with_noise(speech("forever_16k.wav"), snr_db=0.0))
                        await cand.wait_played(await cand.wait_generations(4, timeout=20))
                    await orch.api.end(interviews_pb2.EndInterviewRequest(interview_id=iid, reason="completed"))
                    deadline = time.monotonic() + 30
                    while (await jobs.job(iid)).status != DONE:
                        assert time.monotonic() < deadline, await jobs.job(iid)
                        await asyncio.sleep(0.1)
                    evaluation = await jobs.latest(iid)
                    entries = {e.sequence: e for e in await orch.store.transcript(iid)}
                finally:
                    await jobs.stop()
                    await orch.stop()
    finally:
        for p in procs:
            p.stop()
    assert evaluation is not None and evaluation.status == interviews_pb2.EVALUATION_DONE
    assert evaluation.kind == interviews_pb2.EVALUATION_RUBRIC and evaluation.model == "gemini"
    candidate = [s for s, e in entries.items() if e.role == common_pb2.ROLE_USER and e.text.strip()]
    assert len(candidate) >= 3, entries
    confidence = {s: entries[s].stt_confidence for s in candidate}  # the real recogniser's finals'
    assert all(0 < c <= 1 for c in confidence.values()), confidence
    clear, noisy = confidence[candidate[1]], confidence[candidate[-1]]  # "feels like ...": clean, then noisy
    assert noisy < Settings().low_stt_confidence <= clear, confidence
    for c in evaluation.criteria:
        assert c.status == interviews_pb2.CRITERION_SCORED and c.score == 2
        assert c.evidence_removed == 2  # the made-up #999, once per run
        assert sorted(e.transcript_sequence for e in c.evidence) == sorted(candidate)
        for e in c.evidence:  # every evidence number is real, a candidate's, and holds the quote
            assert entries[e.transcript_sequence].role == common_pb2.ROLE_USER
            assert e.quote == entries[e.transcript_sequence].text
            assert e.low_stt_confidence == (confidence[e.transcript_sequence] < 0.5)  # marked, not dropped
        assert any(e.low_stt_confidence for e in c.evidence)  # ... and the score above is the model's 2
    assert evaluation.last_event_id and evaluation.plan_version == "1"
