"""Utterances FINALIZEd in pieces (turn-taking FINALIZEs at every short pause and joins the pieces'
finals into one transcript entry) must not cost more than 0.02 WER against FINALIZE at the end.

Real VAD (Silero + the VAD service's TurnTracker, in process) finds the pauses; the real STT service
(pocketsphinx, over gRPC) decodes. Three librivox clips with thinking pauses inserted at word ends
(`tests.load.stt_pieces`, which measures all the fixtures: docs/benchmarks.md)."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.vad.model import SileroModel
from tests.load.stt_pieces import RATE, TAIL_S, librivox_paused, plan
from tests.stt.support import answers, audio, cfg, fin, run, stt_server
from tests.support.wer import corpus_wer

pytestmark = pytest.mark.timeout(120)

CLIPS = ("0870", "0890", "0920")


def _script(samples: np.ndarray, spans: list[tuple[int, int]]) -> list:
    """Audio on the caller's timeline (gaps where the gate was closed), a FINALIZE after each span."""
    out = [cfg(provider="offline")]
    for i, (a, b) in enumerate(spans):
        out += [*audio(samples[a:b], offset=a), fin(f"f{i}")]
    return out


def _joined(responses: list, n: int) -> str:
    got = answers(responses)
    return " ".join(t for t in (got[f"f{i}"].text for i in range(n)) if t)


async def test_wer_of_pieces_within_002_of_finalize_at_the_end() -> None:
    clips = [c for c in librivox_paused() if c.name.split("-")[-1].startswith(CLIPS)]
    model = SileroModel()
    plans = [plan(c.samples, model) for c in clips]
    assert sum(p.inner for p in plans) >= 10  # the pauses really cut the clips
    tails = [np.concatenate([c.samples, np.zeros(int(TAIL_S * RATE), dtype=np.int16)]) for c in clips]
    async with stt_server() as stt:
        end, pieces = await asyncio.gather(
            asyncio.gather(*[run(stt.stub, _script(x, p.end), timeout=110) for x, p in zip(tails, plans)]),
            asyncio.gather(*[run(stt.stub, _script(x, p.pieces), timeout=110) for x, p in zip(tails, plans)]))
    refs = [c.reference for c in clips]
    end_wer = corpus_wer(zip(refs, [_joined(r, len(p.end)) for r, p in zip(end, plans)]))
    pieces_wer = corpus_wer(zip(refs, [_joined(r, len(p.pieces)) for r, p in zip(pieces, plans)]))
    assert end_wer < 0.45  # sanity: real decoding (~0.3 on these clips)
    assert pieces_wer - end_wer <= 0.02, (end_wer, pieces_wer)
