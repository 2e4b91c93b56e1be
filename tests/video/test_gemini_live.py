"""The Gemini Live provider through the real google-genai SDK against a fake Live server speaking
the real protocol over TLS; and once against the real API with GEMINI_API_KEY."""
from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from interview.v1 import common_pb2, video_pb2
from services.common.fallback import ProviderChain
from services.common.retry import Backoff
from services.video.providers.gemini_live import TURN_PROMPT, GeminiLiveProvider
from services.video.providers.ocr import Tesseract
from services.video.providers.offline import OfflineProvider
from services.video.servicer import VideoServicer
from services.video.session import Limits
from tests.fakes.gemini_live import API_KEY, FakeGeminiLive, client_context, make_cert
from tests.video.conftest import cfg, frame
from tests.video.screens import DARK, LIGHT, LRU, MERGE, TWO_SUM, editor, jpeg

SCREENS = [jpeg(editor(code, theme)) for code, theme in ((TWO_SUM, DARK), (LRU, LIGHT), (MERGE, DARK))]
GOOD = json.dumps({"observations": [
    {"type": "code_observation", "detail": "Python code defining two_sum using a dict lookup", "confidence": 0.9,
     "source": "screen"},
    {"type": "observed_behaviour", "detail": "The candidate looks nervous and unsure", "confidence": 0.8,
     "source": "camera"},
    {"type": "emotion", "detail": "frustrated", "confidence": 0.7}]})


@pytest.fixture
async def fake(tmp_path) -> AsyncIterator[FakeGeminiLive]:
    cert, key = make_cert(tmp_path)
    server = await FakeGeminiLive(cert, key).start()
    yield server
    await server.stop()


def servicer_for(fake: FakeGeminiLive, executor) -> tuple[VideoServicer, GeminiLiveProvider]:
    gemini = GeminiLiveProvider(API_KEY, model="gemini-live-2.5-flash-preview", base_url=fake.base_url,
                                ssl_context=client_context(fake.cert), tick_s=0.6, min_turn_gap_s=0.2,
                                turn_timeout_s=5, backoff=Backoff(initial_s=0.05, cap_s=0.2, attempts=3))
    offline = OfflineProvider(Tesseract(executor, timeout_s=60), min_interval_s=0)
    chain = ProviderChain([("gemini", gemini), ("offline", offline)])
    return VideoServicer(chain, executor, Limits(2 * 1024 * 1024, 10**7)), gemini


async def drive(servicer: VideoServicer, reqs: list[video_pb2.AnalyzeRequest], gap_s: float = 0.4,
                fake: FakeGeminiLive | None = None):
    async def gen() -> AsyncIterator[video_pb2.AnalyzeRequest]:
        for r in reqs:
            yield r
            if r.WhichOneof("msg") == "frame":
                await asyncio.sleep(gap_s)
            elif fake is not None:  # frames only once the live session is up (a slow TLS handshake
                for _ in range(100):  # would otherwise leave only the newest frame to send)
                    if fake.setups:
                        break
                    await asyncio.sleep(0.05)

    out: dict[str, list] = {"observation": [], "problem": [], "provider_event": [], "stats": []}
    async for r in servicer.analyze_local(gen()):
        out[r.WhichOneof("msg")].append(getattr(r, r.WhichOneof("msg")))
    return out


@pytest.fixture
def executor():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as ex:
        yield ex


async def test_frames_turns_guardrail_and_malformed(fake, executor) -> None:
    fake.replies = [[GOOD[:40], GOOD[40:]], ["Sure! Here is what I see: a code editor."]]
    servicer, _ = servicer_for(fake, executor)
    reqs = [cfg(camera=True)] + [frame(s, i * 600) for i, s in enumerate(SCREENS)]
    out = await drive(servicer, reqs, fake=fake)
    (stats,) = out["stats"]
    assert not fake.invalid, fake.invalid
    assert not stats.fell_back, stats.fallback_reason
    assert fake.headers[0].get("x-goog-api-key") == API_KEY
    setup = fake.setups[0]
    assert setup["generationConfig"]["responseModalities"] == ["TEXT"]
    assert "contextWindowCompression" in setup and "sessionResumption" in setup
    assert "JSON" in json.dumps(setup["systemInstruction"])
    assert len(fake.frames) == 3 == stats.frames_sent_to_model
    for data in fake.frames:
        assert Image.open(io.BytesIO(data)).size == (1280, 720)  # scaled before it left
    assert 1 <= len(fake.turns) == stats.model_turns and stats.est_usd > 0 and stats.est_input_tokens > 0
    assert set(fake.turns) == {TURN_PROMPT}  # only analysis ticks start turns, never a frame
    details = [o.detail for o in out["observation"]]
    assert details == ["Python code defining two_sum using a dict lookup"], details
    assert stats.observations_dropped["nervousness"] == 1 and stats.observations_dropped["emotion"] == 1
    assert len(fake.turns) >= 2 and stats.observations_dropped["malformed"] == 1
    assert stats.provider == "gemini" and not stats.fell_back
    assert stats.by_mode[0].mode == video_pb2.SAMPLING_SCREEN_FOCUS
    await asyncio.sleep(0.2)
    assert fake.closed_abruptly == 0  # the stream's end closed the live session cleanly


async def test_go_away_and_dropped_socket_resume_with_handle(fake, executor) -> None:
    fake.go_away_after_turns = 1
    fake.drop_after_turns = 2
    fake.replies = [[GOOD], [GOOD], [GOOD]]
    servicer, gemini = servicer_for(fake, executor)
    reqs = [cfg()] + [frame(SCREENS[i % 3], i * 600) for i in range(6)]
    out = await drive(servicer, reqs, gap_s=0.7, fake=fake)
    (stats,) = out["stats"]
    assert fake.connections >= 3, fake.connections
    handles = [s.get("sessionResumption", {}).get("handle") for s in fake.setups]
    assert handles[0] is None and handles[1] == "handle-1", handles  # GoAway -> resumed with the handle
    assert handles[2] == "handle-1", handles  # the dropped socket resumed too (no new handle came)
    assert stats.provider == "gemini" and not stats.fell_back
    assert not fake.invalid


async def test_quota_falls_back_to_offline_and_says_so(fake, executor) -> None:
    fake.refuse = (1011, "RESOURCE_EXHAUSTED: You exceeded your current quota")
    servicer, _ = servicer_for(fake, executor)
    out = await drive(servicer, [cfg(), frame(SCREENS[0], 0)])
    (stats,) = out["stats"]
    (event,) = out["provider_event"]
    assert event.kind == common_pb2.ProviderEvent.FALLBACK and event.from_provider == "gemini"
    assert stats.fell_back and stats.provider == "offline" and "quota" in stats.fallback_reason
    assert any("two_sum" in o.detail for o in out["observation"])  # offline analysed the same frame


@pytest.mark.live("GEMINI_API_KEY")
async def test_live_gemini(executor) -> None:
    gemini = GeminiLiveProvider(os.environ["GEMINI_API_KEY"], model=os.environ.get(
        "VIDEO_GEMINI_MODEL", "gemini-live-2.5-flash-preview"), tick_s=2, min_turn_gap_s=1)
    chain = ProviderChain([("gemini", gemini)])
    servicer = VideoServicer(chain, executor, Limits(2 * 1024 * 1024, 10**7))
    out = await drive(servicer, [cfg()] + [frame(s, i * 600) for i, s in enumerate(SCREENS)], gap_s=2)
    (stats,) = out["stats"]
    assert stats.model_turns >= 1 and not stats.fell_back
    for o in out["observation"]:
        assert len(o.detail) <= 200
