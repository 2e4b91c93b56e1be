"""Final results carry a meaningful confidence from both providers: in (0, 1], the words' own
beside it, and lower for a badly heard clip (white noise added to a real recording) than for the
clean one. Offline it is the mean of pocketsphinx's word posteriors (decoder.py says why and its
limits); through the Deepgram SDK it is the transcript's `alternatives[0].confidence`
(tests/stt/test_deepgram.py checks that one)."""
from __future__ import annotations

import numpy as np
import pytest

from services.common.confidence import word_weighted
from tests.stt.support import answers, audio, cfg, fin, run, speech, stt_server
from tests.support.noise import with_noise

async def test_offline_finals_report_the_word_posteriors_and_noise_lowers_them() -> None:
    clean = speech("forever_16k.wav")
    noisy = with_noise(clean, snr_db=0.0)  # the same sentence under as much white noise as speech
    async with stt_server({"STT_PROVIDERS": "offline"}) as stt:
        got = answers(await run(stt.stub, [cfg(), *audio(clean), fin("clean"),
                                            *audio(noisy, offset=len(clean)), fin("noisy")]))
    for r in got.values():
        assert 0 < r.confidence <= 1 and all(0 <= w.confidence <= 1 for w in r.words), r
        assert r.confidence == pytest.approx(np.mean([w.confidence for w in r.words]), abs=1e-3)
    # clean: above the evaluator's low-confidence mark; noisy: well below it (measured 0.92 / 0.23)
    assert got["noisy"].confidence < 0.5 <= got["clean"].confidence - 0.2, got


def test_pieces_combine_word_weighted_and_unknown_pieces_are_left_out() -> None:
    assert word_weighted([(0.9, 18), (0.3, 2)]) == pytest.approx(0.84)
    assert word_weighted([(0.8, 4), (0.0, 10), (0.5, 0)]) == pytest.approx(0.8)  # 0 = unknown; no words: no weight
    assert word_weighted([]) == word_weighted([(0.0, 3)]) == 0.0
