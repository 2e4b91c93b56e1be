"""Turn scoring in the real service (Smart Turn v3.2 through onnxruntime, batched across streams).

Complete utterances are real librivox sentences with their own ending; truncations are made here:
the same recording cut right after a word that cannot end an English sentence ("and", "is", "an",
"have"; word ends from librivox/alignment.json, a pocketsphinx forced alignment), followed by the
recording's own room tone (its lead-in before the first word), as a speaker who stops mid-sentence.
(Clip 0930 cut after "have" is left out: its room tone keeps Silero above the deactivation
threshold for 0.4 s, so the pause the model would score starts late; 0870's "and" is its first word.)
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from interview.v1 import vad_pb2
from services.common.audio import resample, write_wav
from services.vad.service import TURN_SCORING_HEALTH
from services.vad.turn_model import SmartTurnModel
from services.vad.servicer import VadServicer
from services.vad.turns import TurnJob, TurnScorer
from tests.support.procs import ServiceProcess
from tests.vad.helpers import SPEECH, detect, load, requests

ALIGNMENT = json.loads((SPEECH / "librivox" / "alignment.json").read_text())
CLIP = "sense_and_sensibility_01_austen_64kb-{}"
COMPLETE = ["0870", "0890", "0920"]  # whole sentences (0880 and 0930 the model finds ambiguous)
TRUNCATIONS = [("0880", "an"), ("0890", "and"), ("0890", "is"), ("0920", "have")]
TURN_ON = {"turn_scoring": True, "min_silence_ms": 1200}


def _room_tone(audio: np.ndarray, words: list, seconds: float) -> np.ndarray:
    lead = audio[:int(words[0][1] * 16000) - 800]
    return np.tile(lead, int(seconds * 16000 // len(lead)) + 1)[:int(seconds * 16000)]


def _complete(n: str) -> tuple[np.ndarray, float]:
    """(the whole clip + 0.6 s of its room tone, end of its last word in s)."""
    audio, words = load(f"librivox/{CLIP.format(n)}.wav"), ALIGNMENT[CLIP.format(n)]
    return np.concatenate([audio, _room_tone(audio, words, 0.6)]), words[-1][2]


def _truncated(n: str, after: str) -> tuple[np.ndarray, float]:
    """(the clip cut after the word `after` + 1 s of room tone, the cut in s)."""
    audio, words = load(f"librivox/{CLIP.format(n)}.wav"), ALIGNMENT[CLIP.format(n)]
    cut = next(end for word, _, end in words if word == after)
    return np.concatenate([audio[:int(cut * 16000)], _room_tone(audio, words, 1.0)]), cut


def _score_near(result, at_s: float, rate: int = 16000) -> vad_pb2.TurnScore:
    near = [t for t in result.turns if abs(t.pause_start_samples / rate - at_s) < 0.35]
    assert near, f"no pause scored near {at_s:.2f} s: {[t.pause_start_samples / rate for t in result.turns]}"
    return near[-1]


async def test_complete_utterances_score_complete_and_truncated_ones_do_not(channel):
    cases = [(_complete(n), True) for n in COMPLETE] + [(_truncated(*t), False) for t in TRUNCATIONS]
    results = await asyncio.gather(*(detect(channel, requests(audio, params=TURN_ON)) for (audio, _), _ in cases))
    for ((_, at_s), complete), result in zip(cases, results):
        score = _score_near(result, at_s)
        assert score.pause_ms >= 200 and score.decided_at_samples - score.pause_start_samples >= 3200
        if complete:
            assert score.probability >= 0.9 and score.end_of_turn, score
        else:
            assert score.probability < 0.5 and not score.end_of_turn, score
        assert not result.problems


async def test_8khz_streams_are_resampled_for_the_model(channel):
    (full, end), (cut, at) = _complete("0920"), _truncated("0890", "is")
    full8, cut8 = resample(full, 16000, 8000), resample(cut, 16000, 8000)
    r_full, r_cut = await asyncio.gather(detect(channel, requests(full8, rate=8000, chunk=256, params=TURN_ON)),
                                         detect(channel, requests(cut8, rate=8000, chunk=256, params=TURN_ON)))
    assert _score_near(r_full, end, 8000).probability >= 0.9
    assert _score_near(r_cut, at, 8000).probability < 0.5


async def test_turn_params_change_mid_stream_without_reset(channel):
    """Scoring off by default; switched on at 10 s it scores from there on; a threshold raised
    mid-stream changes end_of_turn, not the probabilities; speech events never change."""
    audio = load("lecture_60s_16k.wav")[:16000 * 24]
    switch = 313 * 512  # ~10.0 s
    plain, switched_on, on, raised = await asyncio.gather(
        detect(channel, requests(audio, params={"min_silence_ms": 1200})),
        detect(channel, requests(audio, params={"min_silence_ms": 1200}, updates={switch: {"turn_scoring": True}})),
        detect(channel, requests(audio, params=TURN_ON)),
        detect(channel, requests(audio, params=TURN_ON, updates={switch: {"turn_threshold": 0.999}})))
    assert plain.turns == []
    assert switched_on.pairs() == on.pairs() == raised.pairs() == plain.pairs()
    assert [t.decided_at_samples for t in on.turns if t.decided_at_samples > switch] == \
        [t.decided_at_samples for t in switched_on.turns]
    assert switched_on.turns and all(t.decided_at_samples > switch for t in switched_on.turns)
    assert [t.probability for t in raised.turns] == pytest.approx([t.probability for t in on.turns], abs=1e-4)
    before = [t for t in on.turns if t.decided_at_samples <= switch]
    after = [t for t in raised.turns if t.decided_at_samples > switch]
    assert any(t.end_of_turn for t in on.turns if t.decided_at_samples > switch)  # so the raise changes something
    assert not any(t.end_of_turn for t in after)
    assert [t.end_of_turn for t in raised.turns if t.decided_at_samples <= switch] == [t.end_of_turn for t in before]
    [applied] = raised.applied
    assert applied.params.turn_threshold == pytest.approx(0.999) and applied.params.turn_scoring
    assert applied.params.turn_pause_ms == 200


@pytest.mark.parametrize("update, field", [({"turn_threshold": 1.5}, "turn_threshold"),
                                           ({"turn_pause_ms": 20000}, "turn_pause_ms"),
                                           ({"turn_pause_ms": -1, "turn_scoring": False}, "turn_pause_ms")])
async def test_bad_turn_params_are_a_problem_and_the_old_params_stay(channel, update, field):
    audio = load("lecture_60s_16k.wav")[:16000 * 12]
    result = await detect(channel, requests(audio, params=TURN_ON, updates={64 * 512: update}))
    [problem] = result.problems
    assert problem.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and problem.field == field
    assert "accepted" in problem.message and "previous params stay" in problem.message
    assert any(t.decided_at_samples > 64 * 512 for t in result.turns)  # still scoring with the old params
    assert result.applied == []


async def test_without_the_model_the_service_runs_with_turn_scoring_off():
    with ServiceProcess("vad", env={"VAD_TURN_MODEL": "/nonexistent/smart-turn.onnx"}) as proc:
        async with grpc.aio.insecure_channel(proc.address) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            assert (await health.Check(health_pb2.HealthCheckRequest(service=""))).status == \
                health_pb2.HealthCheckResponse.SERVING
            assert (await health.Check(health_pb2.HealthCheckRequest(service=TURN_SCORING_HEALTH))).status == \
                health_pb2.HealthCheckResponse.NOT_SERVING
            audio, _ = _complete("0920")
            asked, updated = await asyncio.gather(
                detect(ch, requests(audio, params=TURN_ON)),
                detect(ch, requests(audio, params={"min_silence_ms": 1200}, updates={0: {"turn_scoring": True}})))
        for result in (asked, updated):
            [problem] = result.problems
            assert problem.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and problem.field == "turn_scoring"
            assert "/nonexistent/smart-turn.onnx" in problem.message
            assert result.turns == [] and [e.type for e in result.events] == [vad_pb2.SPEECH_STARTED, vad_pb2.SPEECH_STOPPED]
        assert "turn scoring is OFF" in proc.logs()


async def test_pauses_of_several_streams_go_through_one_model_call():
    model = SmartTurnModel()
    scorer = TurnScorer(model, max_batch=16, max_wait_s=0.05)
    await scorer.start()
    try:
        calls = model.calls
        clips = [_complete(n)[0] for n in COMPLETE] + [_truncated("0880", "an")[0]]
        jobs = [TurnJob(c, 16000, len(c) - 3200, len(c)) for c in clips]
        probs = await asyncio.gather(*(scorer.submit(job) for job in jobs))  # four streams, same moment
        assert model.calls - calls == 1 and scorer.calls == 1 and scorer.scored == 4
        alone = [model.score([c])[0] for c in clips]
        assert np.allclose(probs, alone, atol=1e-4)
    finally:
        await scorer.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.vad", "turns", *args], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])


async def test_the_turns_cli_prints_what_the_service_sends(channel, tmp_path):
    audio = np.concatenate([_truncated("0890", "is")[0], _complete("0920")[0]])
    write_wav(tmp_path / "a.wav", audio, 16000)
    write_wav(tmp_path / "a8k.wav", resample(audio, 16000, 8000), 8000)
    streamed = await detect(channel, requests(audio, params=TURN_ON))
    done, done8 = _cli(str(tmp_path / "a.wav")), _cli(str(tmp_path / "a8k.wav"), "--threshold", "0.9")
    assert done.returncode == 0 and done8.returncode == 0, done.stderr + done8.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines and all(set(x) == {"at_s", "pause_ms", "probability", "end_of_turn"} for x in lines)
    assert [x["at_s"] for x in lines] == [round(t.pause_start_samples / 16000, 3) for t in streamed.turns]
    assert [x["probability"] for x in lines] == pytest.approx([t.probability for t in streamed.turns], abs=1e-3)
    assert [x["end_of_turn"] for x in lines] == [t.probability >= 0.5 for t in streamed.turns]
    assert all(x["pause_ms"] >= 200 for x in lines)
    lines8 = [json.loads(line) for line in done8.stdout.splitlines()]
    assert any(x["end_of_turn"] for x in lines8) and not all(x["end_of_turn"] for x in lines8)
    assert all(x["end_of_turn"] == (x["probability"] >= 0.9) for x in lines8)


@pytest.mark.parametrize("content, message", [(b"not audio at all", "not a PCM WAV file"), (None, "No such file")])
def test_the_turns_cli_rejects_a_bad_file_with_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    done = _cli(str(path))
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""
    assert "Traceback" not in done.stderr


class _StuckScorer(TurnScorer):
    """Unit edge case: a turn model that never answers, so the stream reads its requests through
    the helper task that races the score (the path the idle timeout must still cover)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.model = object()  # type: ignore[assignment]  # "available"
        self.submitted = 0

    def submit(self, job: TurnJob) -> asyncio.Future[float]:
        self.submitted += 1
        return asyncio.get_running_loop().create_future()


async def test_the_idle_timeout_still_fires_while_a_turn_score_is_pending():
    from services.common.clock import FakeClock
    from services.common.server import ServerSettings, ServiceRuntime
    from services.vad.batcher import Batcher
    from services.vad.detector import Params
    from services.vad.model import SileroModel
    from interview.v1 import vad_pb2_grpc
    from tests.support.procs import free_port

    clock, scorer = FakeClock(), _StuckScorer()
    runtime = ServiceRuntime("vad", ServerSettings(port=free_port()))
    batcher = Batcher(SileroModel())
    await batcher.start()
    runtime.add("interview.v1.Vad", vad_pb2_grpc.add_VadServicer_to_server,
                VadServicer(batcher, Params(), idle_timeout_s=300, clock=clock, scorer=scorer))
    await runtime.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as ch:
            call = vad_pb2_grpc.VadStub(ch).Detect(timeout=30)
            audio, _ = _complete("0920")
            for req in requests(audio, params=TURN_ON):
                await call.write(req)
            for _ in range(100):  # until the server has taken the audio and submitted the pause
                if scorer.submitted:
                    break
                await asyncio.sleep(0.05)
            assert scorer.submitted == 1
            await asyncio.sleep(0.2)
            await clock.advance(350)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in call:
                    pass
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "no message for 300 s" in err.value.details()  # the server's idle timeout, not ours
            assert batcher.open_streams == 0
    finally:
        await runtime.stop(0)
        await batcher.close()
