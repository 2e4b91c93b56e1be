"""The session's video: phase/mode -> sampling and rates, what reaches the LLM context, and a
video service that is down, refuses or comes back (real video service in-process, offline OCR)."""
from __future__ import annotations

import asyncio

import grpc
import pytest

from interview.v1 import common_pb2, interviews_pb2, session_pb2, video_pb2, video_pb2_grpc
from services.common.clock import FakeClock
from services.common.retry import Backoff
from services.orchestrator.conversation.vision import Vision, frame_rates, sampling_for
from tests.support.procs import free_port
from tests.video import screens
from tests.video.conftest import video_server  # noqa: F401 (fixture)

P = common_pb2
FOCUS, NORMAL, LOW, OFF = (video_pb2.SAMPLING_SCREEN_FOCUS, video_pb2.SAMPLING_NORMAL, video_pb2.SAMPLING_LOW,
                           video_pb2.SAMPLING_OFF)


@pytest.mark.parametrize("kind,mode,camera,screen,expect", [
    (P.PHASE_LIVE_CODING, P.MODE_CONVERSATIONAL, False, True, FOCUS),
    (P.PHASE_INTRODUCTION, P.MODE_CODING, True, False, FOCUS),
    (P.PHASE_TECHNICAL_SCREENING, P.MODE_CONVERSATIONAL, False, True, NORMAL),
    (P.PHASE_SYSTEM_DESIGN, P.MODE_CONVERSATIONAL, True, True, NORMAL),
    (P.PHASE_INTRODUCTION, P.MODE_CONVERSATIONAL, True, True, LOW),
    (P.PHASE_BEHAVIORAL, P.MODE_CONVERSATIONAL, False, True, LOW),
    (P.PHASE_WRAP_UP, P.MODE_CODING, True, True, OFF),
    (P.PHASE_LIVE_CODING, P.MODE_CODING, False, False, OFF),
])
def test_phase_and_mode_map_to_sampling(kind, mode, camera, screen, expect) -> None:
    assert sampling_for(kind, mode, camera, screen) == expect


def test_rates_per_mode_and_only_for_consented_sources() -> None:
    r = frame_rates(FOCUS, True, True)
    assert (r.camera_fps, r.screen_fps) == (0.5, 2.0)
    r = frame_rates(FOCUS, False, True)
    assert (r.camera_fps, r.screen_fps) == (0.0, 2.0)
    assert frame_rates(NORMAL, True, True).screen_fps == 1.0 and frame_rates(LOW, True, True).camera_fps == 0.5
    assert frame_rates(OFF, True, True) == session_pb2.FrameRates()


def interview(kind: int = P.PHASE_LIVE_CODING) -> interviews_pb2.Interview:
    return interviews_pb2.Interview(id="iv_x", role="Engineer", mode=P.MODE_CONVERSATIONAL, phase_id="p",
                                    video_policy=session_pb2.VideoPolicy(camera_allowed=True, screen_allowed=True),
                                    plan=P.Plan(phases=[P.Phase(id="p", kind=kind)]))


def make(stub=None, kind: int = P.PHASE_LIVE_CODING, clock=None, **kw):
    sent, recorded, stats = [], [], []
    iv = interview(kind)

    async def record(**payload):
        if "video_stats" in payload:
            stats.append(payload["video_stats"])
        else:
            recorded.append(payload["observation"])

    v = Vision(stub=stub, interview=iv, stream_id="s1", clock=clock or FakeClock(), phase_kind=lambda: kind,
               to_media=sent.append, record=record, **kw)
    v.recorded_stats = stats
    return v, sent, recorded


def obs(n: int, confidence: float = 0.8, actionable: bool = True) -> video_pb2.AnalyzeResponse:
    return video_pb2.AnalyzeResponse(observation=P.Observation(
        id=f"s1-{n}", type="code_observation", detail=f"code {n}", confidence=confidence, actionable=actionable))


async def test_context_gets_the_last_three_confident_actionable_observations_of_the_last_minute() -> None:
    clock = FakeClock()
    v, _, recorded = make(clock=clock)
    await v._on_response(obs(1))
    await clock.advance(61)
    for n, conf, act in [(2, 0.9, True), (3, 0.5, True), (4, 0.9, False), (5, 0.7, True), (6, 0.8, True),
                         (7, 0.95, True)]:
        await v._on_response(obs(n, conf, act))
    assert [o.id for o in v.recent()] == ["s1-5", "s1-6", "s1-7"]
    assert len(recorded) == 7  # every observation is recorded, whatever reaches the LLM
    await clock.advance(61)
    assert v.recent() == []


async def test_without_consent_media_is_told_zero_and_nothing_is_opened() -> None:
    v, sent, _ = make(stub=object())
    v.retune("join")
    assert sent[-1].frame_rates == session_pb2.FrameRates()
    v.frame(P.VideoFrame(jpeg=b"x", source=P.VIDEO_SOURCE_SCREEN))
    assert v.frames_refused == 1 and v.stream is None
    task = asyncio.create_task(v.run())
    await asyncio.sleep(0.05)
    assert not task.done() and v.stream is None  # waiting for consent, no stream
    task.cancel()
    v.set_consent(P.VideoConsent(screen=True))
    assert (sent[-1].frame_rates.camera_fps, sent[-1].frame_rates.screen_fps) == (0.0, 2.0)
    v.interview.video_policy.screen_allowed = False  # the policy wins over consent
    v.retune("policy")
    assert sent[-1].frame_rates == session_pb2.FrameRates() and v.sampling == OFF
    async with asyncio.timeout(0.5):
        await v.close()  # no stream open: the session's end does not wait for stats
    assert v.recorded_stats == []


async def test_a_down_video_service_never_fails_the_session_and_is_used_once_it_is_up(video_server) -> None:
    port = free_port()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    v, sent, recorded = make(stub=video_pb2_grpc.VideoStub(channel),
                             retry=Backoff(initial_s=0.05, factor=2, cap_s=0.2, attempts=1_000_000))
    v.retune("join")
    v.set_consent(P.VideoConsent(screen=True))
    task = asyncio.create_task(v.run())
    code = screens.jpeg(screens.editor(screens.TWO_SUM))
    for i in range(5):
        v.frame(P.VideoFrame(jpeg=code, source=P.VIDEO_SOURCE_SCREEN, time_ms=i * 500))
        await asyncio.sleep(0.1)
    assert not task.done() and v.frames_dropped == 5  # down: frames dropped, the session goes on
    await video_server(VIDEO_PORT=str(port))
    async with asyncio.timeout(10):
        while not (v.stream and v.stream.connected.is_set()):
            await asyncio.sleep(0.05)
    t = 10_000
    async with asyncio.timeout(20):
        while not recorded:
            t += 600
            v.frame(P.VideoFrame(jpeg=code, source=P.VIDEO_SOURCE_SCREEN, time_ms=t))
            await asyncio.sleep(0.3)
    assert "two_sum" in recorded[0].detail and recorded[0].type == "code_observation"
    assert "two_sum" in v.recent()[-1].detail
    await v.close()  # half-closed: waits for the service's stats, which are recorded
    assert task.done()
    assert v.stats is not None and v.stats.frames_analyzed >= 1
    assert v.recorded_stats == [v.stats] and v.stats.frames_received >= 1 and v.stats.provider == "offline"
    await channel.close()
