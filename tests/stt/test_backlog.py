"""Streams that have ended leave no decode work behind: a live stream's FINALIZE is answered
promptly even right after other streams sent far more audio than the decoders could take and left
(docs/reliability.md, "stt: decode work of finished streams starves live ones")."""
from __future__ import annotations

import asyncio
import time

import numpy as np

from interview.v1 import common_pb2, stt_pb2
from tests.stt.support import answers, audio, cfg, fin, run, speech, stt_server

BIG = 16000 * 32  # one 1 MB chunk: 32 s of 16 kHz audio in one message (within the 4 MB limit)


def flood(seed: int) -> list[stt_pb2.RecognizeRequest]:
    noise = np.random.default_rng(seed).integers(-8000, 8000, BIG).astype("<i2")
    return [cfg(finalize_deadline_ms=500),
            stt_pb2.RecognizeRequest(audio=common_pb2.AudioChunk(pcm=noise.tobytes(), offset_samples=0)),
            fin("flood")]


async def test_a_live_finalize_is_not_starved_by_streams_that_already_ended() -> None:
    clip = speech("goforward_16k.wav")
    async with stt_server({"STT_OFFLINE_WORKERS": "1"}) as stt:
        await run(stt.stub, [cfg(), *audio(clip[:8000]), fin("warm")])  # a decoder loaded
        t0 = time.monotonic()
        await run(stt.stub, [cfg(), *audio(clip), fin("alone")])
        alone = time.monotonic() - t0
        for i in range(6):  # each ends after its FINALIZE's deadline, its audio far from decoded
            flooded = answers(await run(stt.stub, flood(i), timeout=30))
            assert flooded["flood"].by_deadline
        t0 = time.monotonic()
        rs = await run(stt.stub, [cfg(), *audio(clip), fin("live")], timeout=90)
        took = time.monotonic() - t0
        print(f"\nlive stream answered in {took:.2f} s after six flooding streams ended; alone before "
              f"them: {alone:.2f} s (by_deadline={answers(rs)['live'].by_deadline})")
        live = answers(rs)["live"]
        assert not live.by_deadline and "forward" in live.text
        # before the fix: 12.3 s (alone 1 s) and 49.1 s (alone 3.0 s, a busier machine)
        assert took < 2 * alone + 2.0
