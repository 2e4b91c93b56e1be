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

Confidence. A word's is its posterior probability in the bestpath lattice (`Segment.prob`,
already linear 0..1 in pocketsphinx 5: the share of lattice paths through that word there), times
a duration check: min(1, MAX_S_PER_PHONE x its phones / its duration). The check is there because
in heavy noise pocketsphinx explains seconds of audio with one or two long words it is sure of
("chef" over 2.9 s of a 7-word sentence at 0 dB SNR, posterior 1.0); on clean speech it never
bites (lowest factor 0.98 on the fixtures). A final's confidence is the mean over its words: about
the share of its words that are right. The whole hypothesis' posterior (`Hypothesis.prob`,
`get_prob()`) is a product over the path, ~0 beyond a few words, so it is not used.
Measured streamed (`Utterance`, 32 ms chunks) on the 7 fixture clips (librivox, goforward,
forever), 3 noise seeds each: clean 0.53-0.92; white noise at 10 dB SNR 0.07-0.57 (median 0.33);
at 0 dB 0.07-0.34. Limits: it ranks utterances (noisy below clean) but is not calibrated per
utterance: pocketsphinx is sure of some wrong words and unsure of right ones (a correct clean
clip scored 0.59), and a two-word final swings widely; its scale is lower than Deepgram's (clean
Deepgram finals are typically 0.9+), which is why the evaluator's low-confidence mark is at 0.5;
and it needs the bestpath search (on by default; with bestpath off every posterior is 1.0).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from services.common.audio import Resampler
from services.common.languages import canonical

DECODER_RATE = 16000
FRAMES_PER_S = 100  # pocketsphinx's default frame rate
CMN_PRIOR = "51.53,13.29,-4.68,-7.27,-6.71,-10.05,-16.71,-0.66,-1.81,-0.17,0.00,3.24,-7.02"
SETTINGS: dict[str, Any] = {"loglevel": "FATAL", "cmninit": CMN_PRIOR, "fwdflat": False}
_ALT = re.compile(r"\(\d+\)$")

MAX_S_PER_PHONE = 0.25  # generous: phones last ~50-150 ms; a word far longer than this is a poor match

Word = tuple[str, float, float, float]  # (word, start_s, end_s, confidence 0..1) on the decoder's timeline


def word_confidence(decoder: Any, seg: Any) -> float:
    """The word's lattice posterior, lowered when the word spans far more time than its phones take."""
    phones = len((decoder.lookup_word(seg.word) or "x").split())
    duration_s = (seg.end_frame + 1 - seg.start_frame) / FRAMES_PER_S
    return float(seg.prob) * min(1.0, MAX_S_PER_PHONE * phones / duration_s)


def model_language() -> str:
    """The language of the acoustic model the decoders load: pocketsphinx's default model
    directory (".../model/en-us/en-us" -> "en-US"); "" when pocketsphinx or its model is missing.
    Cheap (no decoder is built), so the provider can declare it at construction."""
    try:
        from pocketsphinx import Config
    except ImportError:
        return ""
    hmm = Config()["hmm"]
    return canonical(Path(hmm).name) if hmm and Path(hmm).is_dir() else ""


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
        out.append((_ALT.sub("", word), seg.start_frame / FRAMES_PER_S, (seg.end_frame + 1) / FRAMES_PER_S,
                    word_confidence(decoder, seg)))
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
