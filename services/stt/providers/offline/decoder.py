"""pocketsphinx itself: decoder settings and one utterance's decoding (runs inside a worker process).

Settings. The en-us model's default search is three passes: fwdtree (a tree-lexicon Viterbi run
as audio arrives), then fwdflat (a flat-lexicon re-search of the WHOLE utterance, inside end_utt)
and bestpath (a lattice rescoring, run lazily by hyp()/seg()). fwdflat is what made a final result
slow: it replays every stored frame, ~46 ms per second of speech (measured: end_utt p50 222 ms on
the 3–7 s librivox clips, so a 10 s answer waited ~0.5 s), while fwdtree keeps up with the audio.
With fwdflat off, end_utt + hyp + seg is ~70 ms p50 on a busy machine (end_utt ~25 ms, the
bestpath lattice search ~47 ms: bestpath off is faster still but lost 0.07 WER and broke the
streamed-vs-whole comparison), and WER moved by one word out of 71 on the librivox clips (streamed
0.268 -> 0.282, whole-file 0.282 -> 0.268): `python -m tests.load.stt_decoder`, docs/benchmarks.md.

Feature state (cepstral mean normalisation) is reset to a fixed prior at every utterance start, so a
result never depends on what the stream, or another stream using the same decoder, said before —
except for a piece that goes on where the previous utterance's audio ended, without a gap (the
orchestrator FINALIZEs at every short pause of a turn and keeps sending audio): it starts from the
CMN the previous piece ended with. Restarting from the prior at every piece cost +0.13 WER on
librivox clips with thinking pauses (`python -m tests.load.stt_pieces`, docs/benchmarks.md). The
prior matters: pocketsphinx's default (40,3,-1,0,...) costs ~0.11 WER on the librivox clips when
streaming; this one (the mean over 60 s of 16 kHz English lecture speech,
tests/fixtures/speech/lecture_60s_16k.wav) brings streaming within 0.02 of whole-file decoding.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from services.common.audio import Resampler

DECODER_RATE = 16000
FRAMES_PER_S = 100  # pocketsphinx's default frame rate
CMN_PRIOR = "51.53,13.29,-4.68,-7.27,-6.71,-10.05,-16.71,-0.66,-1.81,-0.17,0.00,3.24,-7.02"
SETTINGS: dict[str, Any] = {"loglevel": "FATAL", "cmninit": CMN_PRIOR, "fwdflat": False}
_ALT = re.compile(r"\(\d+\)$")

Word = tuple[str, float, float, float]  # (word, start_s, end_s, probability) on the decoder's timeline


def new_decoder(**overrides: Any) -> Any:
    """A decoder with the service's settings (~90 MB, ~0.5 s to load): pooled, never made per stream."""
    from pocketsphinx import Decoder

    return Decoder(**{**SETTINGS, **overrides})


def words_of(decoder: Any) -> list[Word]:
    """The best path's words; silences and noise tokens (<sil>, [NOISE], [SPEECH]) left out.
    Hesitations ("um", "uh") are dictionary words here and stay: the session marks them fillers."""
    out = []
    for seg in decoder.seg() or ():  # None when nothing was recognised
        word = seg.word
        if word.startswith(("<", "[")) or word == "<sil>":
            continue
        out.append((_ALT.sub("", word), seg.start_frame / FRAMES_PER_S, (seg.end_frame + 1) / FRAMES_PER_S, float(seg.prob)))
    return out


def decode_whole(samples: np.ndarray) -> str:
    """Decode a whole 16 kHz signal in one call (batch normalisation): the offline reference."""
    decoder = new_decoder()
    decoder.start_utt()
    decoder.process_raw(samples.astype("<i2").tobytes(), False, True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp else ""


class Utterance:
    """One utterance on one decoder: resampling, streaming decode, rate-limited partials, the end."""

    def __init__(self, decoder: Any, rate: int, interim_samples: int, cmn: str | None = None):
        self.decoder = decoder
        self._resampler = Resampler(rate, DECODER_RATE)
        self._interim_samples = interim_samples
        self._since_interim = 0
        # reinit_feat resets all feature state (CMN mean and its frame count) to the configured prior,
        # in 0.1 ms; without a reset, the second utterance already decodes differently. A piece that
        # continues the previous one's audio starts from the CMN that one ended with instead.
        decoder.reinit_feat()
        if cmn:
            decoder.set_cmn(cmn)
        decoder.start_utt()

    def feed(self, pcm: bytes) -> str | None:
        """Decode a batch of s16le audio; a partial hypothesis when one is due, else None."""
        pcm16k = self._resampler.process(np.frombuffer(pcm, dtype="<i2"))
        if len(pcm16k):
            self.decoder.process_raw(pcm16k.tobytes(), False, False)
        self._since_interim += len(pcm16k)
        if self._interim_samples and self._since_interim >= self._interim_samples:
            self._since_interim = 0
            hyp = self.decoder.hyp()
            return hyp.hypstr if hyp else ""
        return None

    def end(self) -> tuple[str, list[Word], str]:
        """(text, words, the CMN estimate at the end: what a following piece starts from)."""
        tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True)
        if len(tail):
            self.decoder.process_raw(tail.tobytes(), False, False)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return (hyp.hypstr if hyp else ""), words_of(self.decoder), self.decoder.get_cmn(False)

    def abandon(self) -> None:
        self.decoder.end_utt()
