"""Decoding runs in worker processes (one per core): parallel, isolated, restarted when one dies."""
from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from interview.v1 import stt_pb2
from services.stt.providers.offline.worker import is_end, next_request
from tests.stt.support import answers, audio, cfg, fin, run, speech, stt_server


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_concurrent_utterances_decode_in_different_worker_processes() -> None:
    clip = speech("goforward_16k.wav")
    async with stt_server({"STT_OFFLINE_WORKERS": "2"}) as stt:
        results = await asyncio.gather(*[run(stt.stub, [cfg(), *audio(clip), fin("u")]) for _ in range(2)])
        workers = stt.pool.workers
        pids = [w.pid for w in workers]
        assert all(w.alive for w in workers) and len(set(pids)) == 2 and os.getpid() not in pids
        assert [len(w.idle) for w in workers] == [1, 1]  # one utterance each, decoders given back
        assert all(cpu_s(pid) > 0.3 for pid in pids)  # both loaded a model and decoded (~0.5 s + ~0.6 s of CPU)
    assert all("forward" in answers(rs)["u"].text for rs in results)


async def test_a_worker_that_dies_mid_utterance_fails_that_stream_and_is_restarted() -> None:
    clip = speech("goforward_16k.wav")
    async with stt_server({"STT_OFFLINE_WORKERS": "1"}) as stt:
        killed = asyncio.Event()

        async def script() -> AsyncIterator[stt_pb2.RecognizeRequest]:
            yield cfg()
            for r in audio(clip[:16000]):
                yield r
            await killed.wait()
            yield fin("u")
            await asyncio.sleep(30)  # no more writes: the status arrives while the client only reads

        call = stt.stub.Recognize(script(), timeout=60)
        pool = stt.pool
        for _ in range(600):  # until the utterance is open in the worker
            if pool.in_use:
                break
            await asyncio.sleep(0.05)
        dead_pid = pool.workers[0].pid
        assert dead_pid is not None
        os.kill(dead_pid, signal.SIGKILL)  # a crash (OOM killer, segfault in the decoder)
        killed.set()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "worker process exited" in (err.value.details() or "")
        assert pool.in_use == 0

        rs = await run(stt.stub, [cfg(), *audio(clip), fin("again")])  # a new stream gets a restarted worker
        assert "forward" in answers(rs)["again"].text
        assert pool.workers[0].pid != dead_pid and pool.workers[0].alive


def test_an_utterance_end_is_served_before_other_streams_audio() -> None:
    feed = (1, "utt", 7, None, b"\0\0", False)
    end = (2, "utt", 8, None, b"", True)
    new = (3, "new", 9)
    assert is_end(end) and not is_end(feed) and not is_end(new)
    assert next_request([feed, new, end]) is end
    assert next_request([feed, new]) is feed  # otherwise first come, first served


def test_an_abandon_goes_first() -> None:
    end = (2, "utt", 8, None, b"", True)
    abandon = (3, "abandon", 7)
    assert next_request([abandon, end]) is abandon
