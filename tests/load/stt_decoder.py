"""What pocketsphinx itself costs, without gRPC: `python -m tests.load.stt_decoder [--set key=value ...]`.

For each librivox clip, one decoder (the service's settings, plus any --set overrides) is fed the
clip in 32 ms chunks the way the service feeds it, then end_utt + hyp + seg (what a worker does at
FINALIZE) are timed (reported as end_utt_ms_*): that is the part of the
final-result latency the service cannot hide behind real-time audio. Also reported: streaming CPU per
second of audio, and WER streamed vs whole-file with the same settings (the offline WER test's
comparison). Prints one JSON line per configuration.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from services.stt.providers.offline.decoder import new_decoder, words_of
from tests.load.stt import clips
from tests.support.wer import corpus_wer

CHUNK = 512


def parse_value(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def decode(decoder: Any, samples: np.ndarray, chunk: int) -> str:
    decoder.reinit_feat()
    decoder.start_utt()
    pcm = samples.astype("<i2")
    for i in range(0, len(pcm), chunk):
        decoder.process_raw(pcm[i:i + chunk].tobytes(), False, chunk >= len(pcm))
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp else ""


def measure(overrides: dict[str, Any], repeat: int) -> dict[str, Any]:
    decoder = new_decoder(**overrides)
    recordings, refs = clips()
    feed_s = audio_s = 0.0
    end_ms: list[float] = []
    hyp_ms: list[float] = []
    streamed, whole = [], []
    for _ in range(repeat):
        for rec in recordings:
            samples = rec.samples.astype("<i2")
            decoder.reinit_feat()
            decoder.start_utt()
            t0 = time.process_time()
            for i in range(0, len(samples), CHUNK):
                decoder.process_raw(samples[i:i + CHUNK].tobytes(), False, False)
            t1 = time.perf_counter()
            decoder.end_utt()
            t2 = time.perf_counter()
            hyp = decoder.hyp()  # with bestpath on, hyp() is where the lattice is built and searched
            words_of(decoder)
            end_ms.append((time.perf_counter() - t1) * 1000)
            hyp_ms.append((time.perf_counter() - t2) * 1000)
            feed_s += time.process_time() - t0
            audio_s += rec.seconds
            streamed.append((refs[rec.name], hyp.hypstr if hyp else ""))
    for rec in recordings:
        whole.append((refs[rec.name], decode(decoder, rec.samples, len(rec.samples))))
    arr = np.asarray(end_ms)
    return {"settings": overrides or "service", "end_utt_ms_p50": round(float(np.median(arr)), 1),
            "end_utt_ms_max": round(float(arr.max()), 1), "of_which_hyp_seg_ms_p50": round(float(np.median(hyp_ms)), 1),
            "end_utt_ms_per_audio_s": round(float(arr.sum() / audio_s), 1),
            "rtf_cpu": round(feed_s / audio_s, 4), "wer_streamed": round(corpus_wer(streamed), 4),
            "wer_whole": round(corpus_wer(whole), 4), "audio_s": round(audio_s, 1)}


def main() -> None:
    p = argparse.ArgumentParser("python -m tests.load.stt_decoder", description=__doc__.splitlines()[0])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="pocketsphinx config override (repeatable); measured after the service's own settings")
    p.add_argument("--next", action="append_const", dest="set", const=None, help="start another configuration")
    p.add_argument("--repeat", type=int, default=2, help="passes over the clips (end_utt timings)")
    args = p.parse_args()
    configs: list[dict[str, Any]] = [{}, {}]  # the service's settings first: the baseline of the same run
    for item in args.set:
        if item is None:
            configs.append({})
            continue
        key, _, raw = item.partition("=")
        configs[-1][key] = parse_value(raw)
    for overrides in configs if configs[-1] else configs[:1]:
        print(json.dumps(measure(overrides, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
