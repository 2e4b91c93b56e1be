"""The Batcher in-process with the real Silero session: batching happens, is exact, and waits
only while more windows can still come."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from services.vad.batcher import Batcher
from services.vad.model import SileroModel, StreamState
from tests.vad.helpers import load

_model = SileroModel()


@pytest.fixture
async def batcher_factory():
    made: list[Batcher] = []

    async def make(**kw) -> Batcher:
        b = Batcher(_model, **kw)
        await b.start()
        made.append(b)
        return b

    yield make
    for b in made:
        await b.close()


def windows(name: str, n: int, rate: int = 16000, size: int = 512) -> list[np.ndarray]:
    audio = load(name, rate)
    return [audio[i * size:(i + 1) * size] for i in range(n)]


async def test_windows_of_many_streams_share_calls_and_equal_single_stream_results(batcher_factory):
    batcher = await batcher_factory(max_batch=64, max_wait_s=0.005)
    names = ["phone_call_2spk_16k.wav", "lecture_60s_16k.wav", "goforward_16k.wav", "forever_16k.wav"] * 4
    clips = [windows(n, 60) for n in names]
    clips += [windows("forever_16k.wav", 60, rate=8000, size=256)] * 2  # mixed rates in one batch
    rates = [16000] * 16 + [8000] * 2

    async def stream(clip: list[np.ndarray], rate: int) -> list[float]:
        state = StreamState(rate)
        return [await batcher.infer(state, w) for w in clip]

    for _ in clips:
        batcher.stream_opened()
    batched = await asyncio.gather(*(stream(c, r) for c, r in zip(clips, rates)))
    assert batcher.windows == 18 * 60
    assert batcher.batches <= batcher.windows / 4, "windows of concurrent streams were not batched"
    for clip, rate, got in zip(clips, rates, batched):
        state = StreamState(rate)
        assert got == [_model.step(state, w) for w in clip]  # bit for bit


async def test_a_window_waits_at_most_max_wait_for_others(batcher_factory):
    batcher = await batcher_factory(max_wait_s=0.2)
    batcher.stream_opened()
    batcher.stream_opened()  # a second stream that sends nothing
    t0 = time.monotonic()
    await batcher.infer(StreamState(16000), np.zeros(512, np.int16))
    assert 0.19 <= time.monotonic() - t0 < 2.0


async def test_no_wait_when_every_open_stream_already_has_its_window_in(batcher_factory):
    batcher = await batcher_factory(max_wait_s=5.0)
    batcher.stream_opened()
    t0 = time.monotonic()
    await batcher.infer(StreamState(16000), np.zeros(512, np.int16))
    assert time.monotonic() - t0 < 2.0


async def test_a_full_queue_slows_submitters_down_without_losing_windows(batcher_factory):
    batcher = await batcher_factory(max_pending=2, max_batch=2)
    clips = [windows("goforward_16k.wav", 20) for _ in range(6)]

    async def stream(clip: list[np.ndarray]) -> list[float]:
        state = StreamState(16000)
        return [await batcher.infer(state, w) for w in clip]

    results = await asyncio.gather(*(stream(c) for c in clips))
    assert all(r == results[0] for r in results) and batcher.windows == 120


async def test_a_closed_batcher_refuses_windows_with_a_clear_error(batcher_factory):
    from services.vad.batcher import InferenceUnavailable

    batcher = await batcher_factory()
    await batcher.close()
    with pytest.raises(InferenceUnavailable, match="not running"):
        await batcher.infer(StreamState(16000), np.zeros(512, np.int16))


class _FailsOnce(SileroModel):
    """Unit-level edge case: the real model, except that its first call after warm-up fails."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def run(self, rate, inputs, states):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("simulated onnxruntime error")
        return super().run(rate, inputs, states)


async def test_a_failed_model_call_fails_only_its_windows_and_the_batcher_goes_on():
    from services.vad.batcher import InferenceUnavailable

    batcher = Batcher(_FailsOnce())
    await batcher.start()
    try:
        window = load("goforward_16k.wav")[8000:8512]
        with pytest.raises(InferenceUnavailable, match="simulated onnxruntime error"):
            await batcher.infer(StreamState(16000), window)
        assert await batcher.infer(StreamState(16000), window) == _model.step(StreamState(16000), window)
    finally:
        await batcher.close()
