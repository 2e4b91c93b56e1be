"""Barge-in as the client hears it, and video frames only with consent (aiortc client peer)."""
from __future__ import annotations

import numpy as np
import pytest

from interview.v1 import common_pb2
from services.media.client import RATE, ClientPeer, PatternTrack, WavTrack
from tests.fakes.session import MONOLOGUE, FakeSession
from tests.media.helpers import load_candidate, speech_span, until


@pytest.fixture
def fake() -> FakeSession:
    return FakeSession(greeting=MONOLOGUE)


async def test_agent_audio_stops_after_pause_and_nothing_of_the_cleared_generation_plays(media, fake) -> None:
    iid, token = fake.create()
    samples, rate = load_candidate()
    client = ClientPeer(media.url, iid, WavTrack(samples, rate, lead_silence_s=2.5), token=token)
    await client.connect()
    await client.wait_connected()
    rec = await fake.wait_session()
    await until(lambda: "clear:greeting" in rec.sent, timeout=10)
    await until(lambda: any(not m.finished and m.generation_id == "greeting" for m in rec.marks), timeout=3)
    import asyncio
    await asyncio.sleep(1.5)
    await client.hangup()
    heard, at = client.heard.signal(), np.repeat(np.asarray(client.heard.at), 960)[:len(client.heard.signal())]
    pause = rec.sent["pause:greeting"]
    start, _ = speech_span(heard, RATE)
    assert at[start] < pause  # the agent was speaking when the candidate barged in
    after = heard[at > pause + 0.15]
    assert speech_span(after, RATE, dbfs=-45) == (0, 0), "agent audio after PAUSE + 150 ms"
    # the played amount reported is what was heard, not what was sent
    mark = [m for m in rec.marks if m.generation_id == "greeting"][-1]
    assert not mark.finished and 0 < mark.samples_played < 24000 * 4


@pytest.mark.parametrize("consent,expect", [({"camera": False, "screen": True}, {common_pb2.VIDEO_SOURCE_SCREEN}),
                                            ({}, set())])
async def test_frames_only_with_consent_capped_and_scaled(media, fake, consent, expect) -> None:
    iid, token = fake.create()
    client = ClientPeer(media.url, iid, WavTrack(np.zeros(0, np.int16), RATE), token=token,
                        camera=PatternTrack(1280, 720), screen=PatternTrack(1920, 1080), consent=consent)
    await client.connect()
    await client.wait_connected()
    rec = await fake.wait_session()
    import asyncio
    await asyncio.sleep(3.2)
    await client.hangup()
    assert {f.source for f in rec.frames} == expect
    if expect:
        assert 3 <= len(rec.frames) <= 8  # 2 fps cap over ~3 s
        f = rec.frames[0]
        assert f.jpeg[:3] == b"\xff\xd8\xff" and (f.width, f.height) == (1280, 720)



async def test_frames_follow_the_orchestrators_rates_and_zero_sends_none(media, fake) -> None:
    """FrameRates throttle at the source: camera consented but at 0 fps (nothing sent, nothing
    encoded), screen at 1 fps; the page is told the rates too."""
    import asyncio
    from interview.v1 import session_pb2
    fake.frame_rates = session_pb2.FrameRates(camera_fps=0, screen_fps=1)
    iid, token = fake.create()
    client = ClientPeer(media.url, iid, WavTrack(np.zeros(0, np.int16), RATE), token=token,
                        camera=PatternTrack(1280, 720), screen=PatternTrack(1920, 1080),
                        consent={"camera": True, "screen": True})
    await client.connect()
    await client.wait_connected()
    rec = await fake.wait_session()
    await asyncio.sleep(3.2)
    peer = next(iter(media.gateway.peers.values()))
    await client.hangup()
    assert {f.source for f in rec.frames} == {common_pb2.VIDEO_SOURCE_SCREEN}
    assert 2 <= len(rec.frames) <= 5  # 1 fps over ~3 s (2 fps before the rates would give 6+)
    assert peer.gates[common_pb2.VIDEO_SOURCE_CAMERA].skipped > 0
    assert any(e.get("type") == "frame_rates" and e.get("screen") == 1 for e in client.events)
