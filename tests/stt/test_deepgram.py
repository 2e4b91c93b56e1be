"""Deepgram provider: the real SDK against a fake server speaking Deepgram's wire protocol.

The transcript tests also run against the real Deepgram under the `live` marker.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import grpc
import pytest

from interview.v1 import common_pb2
from tests.fakes.deepgram import FakeDeepgram
from tests.stt.support import answers, audio, cfg, events, fin, run, speech, status_of, stt_server
from tests.support.wer import wer

Kind = common_pb2.ProviderEvent


def dg_env(fake: FakeDeepgram, **extra: str) -> dict[str, str]:
    return {"DEEPGRAM_API_KEY": fake.api_key, "STT_DEEPGRAM_URL": fake.url, "STT_RECONNECT_INITIAL_S": "0.05",
            "STT_RECONNECT_CAP_S": "0.1", **extra}


async def test_transcribes_through_the_sdk_with_endpointing_off_and_offsets_mapped() -> None:
    clip = speech("goforward_16k.wav")
    async with FakeDeepgram() as fake, stt_server(dg_env(fake)) as stt:
        rs = await run(stt.stub, [cfg(interim_results=True, keywords=["pytest"]), *audio(clip, offset=32000),
                                  fin("u")])
    result = answers(rs)["u"]
    assert result.provider == "deepgram" and result.from_finalize and not result.by_deadline
    assert wer("go forward ten meters", result.text) <= 0.25, result.text
    assert result.start_offset_samples == 32000 and result.end_offset_samples == 32000 + len(clip)
    assert all(32000 <= w.start_offset_samples < w.end_offset_samples <= 32000 + len(clip) for w in result.words)
    # the transcript's confidence (alternatives[0].confidence; the fake's is its words' mean), not a constant
    assert 0 < result.confidence <= 1 and all(0 < w.confidence <= 1 for w in result.words)
    assert result.confidence == pytest.approx(sum(w.confidence for w in result.words) / len(result.words), abs=1e-3)
    assert any(not r.result.is_final for r in rs if r.WhichOneof("msg") == "result")  # interims passed on
    (conn,) = fake.connections
    assert conn.path == "/v1/listen" and conn.authorization == f"Token {fake.api_key}"
    q = {k: v[0] for k, v in conn.query.items()}
    assert (q["encoding"], q["sample_rate"], q["endpointing"], q["interim_results"]) == ("linear16", "16000", "false", "true")
    assert conn.query["keyterm"] == ["pytest"]
    assert q["filler_words"] == "true"  # hesitations reach turn-taking (marked Word.filler)
    assert conn.finalizes == 1 and conn.close_streams == 1 and conn.audio_bytes == 2 * len(clip)


async def test_dropped_socket_reconnects_and_replays_the_utterance_in_flight() -> None:
    clip = speech("forever_16k.wav")
    async with FakeDeepgram() as clean_fake, stt_server(dg_env(clean_fake)) as stt:
        reference = answers(await run(stt.stub, [cfg(), *audio(clip), fin("u")]))["u"].text
    async with FakeDeepgram(drop_after_s=2.0) as fake, stt_server(dg_env(fake)) as stt:
        rs = await run(stt.stub, [cfg(), *audio(clip), fin("u")])
    kinds = [e.kind for e in events(rs)]
    assert Kind.RECONNECTING in kinds and Kind.RECONNECTED in kinds
    assert len(fake.connections) == 2
    assert fake.connections[1].audio_bytes == 2 * len(clip)  # the whole utterance was replayed
    result = answers(rs)["u"]
    assert result.text == reference and "forever" in result.text  # the end of the clip is after the drop
    assert "feels" in result.text  # ... and its start was before it


async def test_bad_key_without_fallback_is_unauthenticated_and_the_key_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeDeepgram() as fake:
        env = {**dg_env(fake), "DEEPGRAM_API_KEY": "wrong-key-4242424242", "STT_FALLBACK": "false"}
        async with stt_server(env) as stt:
            err = await status_of(stt, [cfg(), *audio(speech("goforward_16k.wav")), fin("u")])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "API key" in err.details() and "wrong-key-4242424242" not in err.details()
    assert fake.rejected >= 1
    assert "wrong-key-4242424242" not in caplog.text


async def test_bad_key_with_fallback_continues_offline_and_says_so() -> None:
    async with FakeDeepgram() as fake:
        async with stt_server({**dg_env(fake), "DEEPGRAM_API_KEY": "wrong-key-4242424242"}) as stt:
            rs = await run(stt.stub, [cfg(), *audio(speech("goforward_16k.wav")), fin("u")])
            # the breaker is now open: the next stream starts on offline straight away
            rs2 = await run(stt.stub, [cfg(), *audio(speech("goforward_16k.wav")), fin("u")])
    (fallback,) = [e for e in events(rs) if e.kind == Kind.FALLBACK]
    assert (fallback.provider, fallback.from_provider) == ("offline", "deepgram")
    assert answers(rs)["u"].provider == "offline" and "forward" in answers(rs)["u"].text
    assert Kind.BREAKER_OPEN in [e.kind for e in events(rs2)] and answers(rs2)["u"].provider == "offline"
    assert fake.rejected == 1


async def test_provider_gone_for_good_is_unavailable_without_fallback() -> None:
    async with FakeDeepgram(drop_after_s=1.0, refuse_after_drop=True) as fake:
        async with stt_server({**dg_env(fake), "STT_FALLBACK": "false", "STT_RECONNECT_ATTEMPTS": "2"}) as stt:
            err = await status_of(stt, [cfg(), *audio(speech("forever_16k.wav")), fin("u")])
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "gave up after 2 reconnect attempts" in err.details()


async def test_provider_gone_for_good_falls_back_offline_with_the_buffered_audio() -> None:
    clip = speech("forever_16k.wav")
    async with FakeDeepgram(drop_after_s=2.0, refuse_after_drop=True) as fake:
        async with stt_server({**dg_env(fake), "STT_RECONNECT_ATTEMPTS": "2"}) as stt:
            rs = await run(stt.stub, [cfg(), *audio(clip), fin("u")])
    kinds = [e.kind for e in events(rs)]
    assert kinds.count(Kind.RECONNECTING) == 2 and Kind.FALLBACK in kinds
    result = answers(rs)["u"]
    assert result.provider == "offline"
    assert "feels" in result.text and "forever" in result.text  # audio from before the drop was not lost


async def test_slow_provider_is_answered_by_deadline_with_the_best_interim() -> None:
    clip = speech("forever_16k.wav")
    async with FakeDeepgram(result_delay_s=1.5, interim_s=0.5) as fake:
        async with stt_server({**dg_env(fake), "STT_FINALIZE_DEADLINE_MS": "300"}) as stt:
            rs = await run(stt.stub, [cfg(interim_results=True), *audio(clip), fin("slow"),
                                      *audio(clip, offset=len(clip)), fin("next")])
    got = answers(rs)
    assert got["slow"].by_deadline and not got["slow"].from_finalize
    interims = [r.result.text for r in rs if r.WhichOneof("msg") == "result" and not r.result.is_final]
    assert got["slow"].text and got["slow"].text in interims  # the latest interim, not nothing
    assert list(got) == ["slow", "next"]  # answered once each, in order; the late answer was dropped


async def test_keepalive_holds_an_idle_socket_open() -> None:
    clip = speech("goforward_16k.wav")
    async with FakeDeepgram(idle_timeout_s=0.5) as fake:
        async with stt_server({**dg_env(fake), "STT_DEEPGRAM_KEEPALIVE_S": "0.15"}) as stt:
            async def script() -> AsyncIterator[object]:
                yield cfg()
                for r in audio(clip[:8000]):
                    yield r
                await asyncio.sleep(1.5)  # a silent stretch (minutes in CODING mode) three times the idle limit
                for r in audio(clip[8000:], offset=8000):
                    yield r
                yield fin("u")

            rs = [r async for r in stt.stub.Recognize(script(), timeout=30)]
    assert "forward" in answers(rs)["u"].text
    assert len(fake.connections) == 1 and fake.connections[0].keepalives >= 5


@pytest.mark.live("DEEPGRAM_API_KEY")
async def test_live_deepgram_transcribes_a_recording() -> None:
    clip = speech("goforward_16k.wav")
    async with stt_server({"DEEPGRAM_API_KEY": os.environ["DEEPGRAM_API_KEY"]}) as stt:
        rs = await run(stt.stub, [cfg(provider="deepgram"), *audio(clip), fin("u")])
    result = answers(rs)["u"]
    assert result.provider == "deepgram" and wer("go forward ten meters", result.text) <= 0.25
