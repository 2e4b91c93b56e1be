"""Cartesia through the real SDK, against the fake websocket server (and the real service when
CARTESIA_API_KEY is set): streaming with continuations, a dropped socket, an error message, a
cancel, the breaker."""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from pocketsphinx import Decoder

from interview.v1 import common_pb2, tts_pb2
from services.common.audio import resample
from tests.fakes.cartesia import FakeCartesia
from tests.support.wer import wer
from tests.tts.conftest import audio_of, collect, done_of, request_stream
from tests.tts.test_speech import transcribe

PIECES = ["Thanks, that helps. ", "Now let's talk about ", "how you would scale it. ", "What breaks first?"]
SPOKEN = "Thanks, that helps. Now let's talk about how you would scale it. What breaks first?"


@pytest.fixture
async def fake() -> AsyncIterator[FakeCartesia]:
    async with FakeCartesia() as server:
        yield server


def _events(responses: list[tts_pb2.SynthesizeResponse]) -> list[common_pb2.ProviderEvent]:
    return [r.provider_event for r in responses if r.WhichOneof("msg") == "provider_event"]


def _assert_contiguous(responses: list[tts_pb2.SynthesizeResponse]) -> None:
    offset = 0
    for r in responses:
        if r.WhichOneof("msg") == "audio":
            assert r.audio.offset_samples == offset
            offset += len(r.audio.pcm) // 2
    assert done_of(responses).total_samples == offset


@pytest.mark.parametrize("where", ["fake", pytest.param("live", marks=pytest.mark.live("CARTESIA_API_KEY"))])
async def test_streams_pieces_as_continuations_of_one_context(tts_server, fake, where) -> None:
    env = fake.env() if where == "fake" else {"TTS_PROVIDERS": "cartesia", "CARTESIA_API_KEY": os.environ["CARTESIA_API_KEY"]}
    stub = await tts_server(**env)
    responses = await collect(stub.Synthesize(request_stream(
        tts_pb2.TtsConfig(provider="cartesia", sample_rate_hz=16000, generation_id="g-42"), PIECES, delay_s=0.02)))
    done = done_of(responses)
    assert done.provider == "cartesia" and done.segments == 3 and done.spoken_text == SPOKEN
    assert not _events(responses)
    _assert_contiguous(responses)
    audio = audio_of(responses)
    assert len(audio) / 16000 > 2.0
    hyp = await asyncio.to_thread(transcribe, resample(audio, 16000, 16000), Decoder(samprate=16000))
    assert wer(SPOKEN, hyp) <= 0.25, hyp  # the audio survived base64, rate and chunking intact
    if where == "live":
        return
    requests = [m for m in fake.received if "transcript" in m]
    assert len({m["context_id"] for m in requests}) == 1 and requests[0]["context_id"].startswith("g-42")
    assert [m["continue"] for m in requests] == [True, True, True, False]
    assert all(m.get("flush") for m in requests[:3]) and requests[-1]["transcript"] == ""
    assert requests[0]["output_format"] == {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 16000}
    assert requests[0]["voice"] == {"mode": "id", "id": "6ccbfb76-1fc6-48f7-b71d-91ac6298247b"}


async def test_warm_connection_is_reused(tts_server, fake) -> None:
    stub = await tts_server(**fake.env())
    for _ in range(3):
        done = done_of(await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["Next question."]))))
        assert done.provider == "cartesia"
    assert fake.connections == 1


async def test_dropped_socket_falls_back_to_offline_mid_utterance(tts_server) -> None:
    async with FakeCartesia(drop_after_chunks=40) as fake:  # 0.8 s into the utterance: piece 2
        stub = await tts_server(**fake.env())
        responses = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), PIECES)))
    events = _events(responses)
    assert [(e.kind, e.provider, e.from_provider) for e in events] == [(common_pb2.ProviderEvent.FALLBACK, "offline", "cartesia")]
    assert "dropped" in events[0].reason
    done = done_of(responses)
    assert done.provider == "offline" and done.spoken_text == SPOKEN and done.segments == 3
    _assert_contiguous(responses)
    # The interrupted piece is spoken again, from its start, by the offline voice.
    tagged = [(r.audio.segment_index, r.audio.text) for r in responses if r.WhichOneof("msg") == "audio" and r.audio.text]
    assert tagged[0] == (0, "Thanks, that helps.") and tagged.count(tagged[1]) == 2


async def test_error_message_falls_back_and_says_why(tts_server) -> None:
    async with FakeCartesia(error_on_request=2) as fake:
        stub = await tts_server(**fake.env())
        responses = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), PIECES)))
    (event,) = _events(responses)
    assert event.kind == common_pb2.ProviderEvent.FALLBACK and "the model is overloaded" in event.reason
    assert done_of(responses).spoken_text == SPOKEN
    cartesia_segments = {r.audio.segment_index for r in responses[:responses.index(next(
        r for r in responses if r.WhichOneof("msg") == "provider_event"))] if r.WhichOneof("msg") == "audio"}
    assert cartesia_segments == {0}


async def test_cancel_mid_stream_cancels_the_context(tts_server) -> None:
    async with FakeCartesia(chunk_delay_s=0.02) as fake:
        stub = await tts_server(**fake.env())
        call = stub.Synthesize(request_stream(tts_pb2.TtsConfig(), PIECES))
        async for r in call:
            if r.WhichOneof("msg") == "audio":
                break
        call.cancel()
        for _ in range(100):
            if fake.cancelled:
                break
            await asyncio.sleep(0.01)
        context_id = next(m["context_id"] for m in fake.received if "transcript" in m)
        assert fake.cancelled == [context_id]
        sent = fake.chunks_sent
        await asyncio.sleep(0.1)
        assert fake.chunks_sent == sent and fake.sent_after_cancel == 0  # generation stopped
        await asyncio.sleep(0.05)
        assert stub.runtime.admission.active == 0


async def test_breaker_skips_a_failing_cartesia(tts_server) -> None:
    async with FakeCartesia(api_key="right") as fake:
        env = {**fake.env(), "CARTESIA_API_KEY": "wrong", "TTS_BREAKER_FAILURES": "1", "TTS_BREAKER_COOLDOWN_S": "0.3"}
        stub = await tts_server(**env)
        first = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["Hello there."])))
        assert [e.kind for e in _events(first)] == [common_pb2.ProviderEvent.FALLBACK]
        assert "401" in _events(first)[0].reason
        second = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["Hello again."])))
        (event,) = _events(second)
        assert (event.kind, event.provider, event.from_provider) == (common_pb2.ProviderEvent.BREAKER_OPEN, "offline", "cartesia")
        assert done_of(second).provider == "offline" and fake.connections == 0
        await asyncio.sleep(0.35)  # cool-down over: the next stream that speaks is the trial
        silent = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), [])))
        assert not _events(silent) and done_of(silent).segments == 0
        third = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["Third time."])))
        assert [e.kind for e in _events(third)] == [common_pb2.ProviderEvent.FALLBACK]  # tried, failed again


async def test_offline_requested_explicitly_skips_cartesia(tts_server, fake) -> None:
    stub = await tts_server(**fake.env())
    done = done_of(await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(provider="offline"), ["Hi."]))))
    assert done.provider == "offline" and fake.connections == 0
