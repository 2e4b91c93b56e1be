"""Bad input gets a clear status; other streams are unaffected; idle streams hold nothing."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from interview.v1 import common_pb2, stt_pb2
from tests.stt.support import answers, audio, cfg, fin, run, speech, status_of, stt_server

SILENCE = np.zeros(512, dtype=np.int16)


def odd_bytes() -> stt_pb2.RecognizeRequest:
    return stt_pb2.RecognizeRequest(audio=common_pb2.AudioChunk(pcm=b"\x01\x02\x03", offset_samples=512))


BAD = {
    "audio before config": ([*audio(SILENCE), cfg()], grpc.StatusCode.INVALID_ARGUMENT, "first message"),
    "sample rate zero": ([cfg(rate=0), *audio(SILENCE)], grpc.StatusCode.INVALID_ARGUMENT, "sample_rate_hz"),
    "sample rate too high": ([cfg(rate=192000), *audio(SILENCE)], grpc.StatusCode.INVALID_ARGUMENT, "16000"),
    "odd byte count": ([cfg(), *audio(SILENCE), odd_bytes()], grpc.StatusCode.INVALID_ARGUMENT, "2 bytes per sample"),
    "unknown provider": ([cfg(provider="whisper")], grpc.StatusCode.INVALID_ARGUMENT, "unknown provider"),
    "deepgram without a key": ([cfg(provider="deepgram")], grpc.StatusCode.FAILED_PRECONDITION, "DEEPGRAM_API_KEY"),
    "offline in French": ([cfg(language="fr-FR")], grpc.StatusCode.INVALID_ARGUMENT,
                          "does not recognise 'fr-FR'; it supports en-US"),
    "offsets backwards": ([cfg(), *audio(SILENCE, offset=5000), *audio(SILENCE, offset=0)],
                          grpc.StatusCode.INVALID_ARGUMENT, "went backwards"),
    "second config": ([cfg(), *audio(SILENCE), cfg()], grpc.StatusCode.INVALID_ARGUMENT, "only be sent once"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_input_gets_a_clear_status(case: str) -> None:
    requests, code, words = BAD[case]
    async with stt_server() as stt:
        err = await status_of(stt, requests)
    assert err.code() == code
    assert words in err.details()


async def test_bad_streams_do_not_disturb_a_good_one() -> None:
    clip = speech("goforward_16k.wav")
    async with stt_server() as stt:
        good = asyncio.create_task(run(stt.stub, [cfg(), *audio(clip), fin("u")]))
        errors = await asyncio.gather(*[status_of(stt, BAD[c][0]) for c in BAD])
        assert all(e.code() != grpc.StatusCode.OK for e in errors)
        assert "forward" in answers(await good)["u"].text
        assert stt.pool.in_use == 0  # failed streams gave their decoders back


async def test_an_idle_open_stream_holds_no_decoder_and_still_works_after() -> None:
    clip = speech("goforward_16k.wav")
    async with stt_server() as stt:
        checked = asyncio.Event()

        async def script() -> AsyncIterator[stt_pb2.RecognizeRequest]:
            yield cfg()
            for r in audio(clip):
                yield r
            yield fin("first")
            await checked.wait()
            await asyncio.sleep(1.0)  # minutes in production; nothing is held meanwhile
            for r in audio(clip, offset=10 * 16000):
                yield r
            yield fin("second")

        got = {}
        async for r in stt.stub.Recognize(script(), timeout=60):
            if r.result.finalize_id:
                got[r.result.finalize_id] = r.result
                if r.result.finalize_id == "first":
                    assert stt.pool.in_use == 0  # between utterances the stream holds no decoder
                    checked.set()
    assert got["first"].text == got["second"].text
    assert got["second"].start_offset_samples == 10 * 16000


async def test_a_stream_that_sends_nothing_ends_cleanly() -> None:
    async with stt_server() as stt:
        assert await run(stt.stub, []) == []
        assert await run(stt.stub, [cfg()]) == []
