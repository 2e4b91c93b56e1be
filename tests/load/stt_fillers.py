"""Do offline fillers come out? `python -m tests.load.stt_fillers [--fillprob P ...]`.

No fixture has a real hesitation with a reference (the phone call's .stm has no "um"/"uh"), so this
is a probe on synthetic speech: flite (`slt` voice) says 10 interview sentences with one "um" or
"uh" each; the service's decoder (decoder.Utterance) transcribes them; filler recall = fillers in
the output / fillers said. With `--fillprob`, the same with `++UM++` (AH M) and `++UH++` (AH) added
to the model's noise dictionary at that filler probability, and the librivox WER (fillers counted
as words) to show what the change costs read speech. flite's "um" is not a human hesitation: a
negative result here says little about real speech. Prints one JSON line per configuration.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

from services.common.audio import read_wav
from services.stt.providers.offline.decoder import Utterance, new_decoder
from tests.stt.support import librivox
from tests.support.wer import corpus_wer

SENTENCES = ["i think um we should add a cache", "so uh the main problem was latency",
             "we used um postgres for the data", "and then uh we moved to kafka", "it was um about three months",
             "the team uh had five people", "i would say um it went well", "we um tested it in staging",
             "uh i am not sure about that", "well um let me think"]
FILLERS = {"um", "uh", "umm", "uhh", "ah", "er", "hmm", "++UM++", "++UH++"}


def decode(decoder, samples) -> str:  # type: ignore[no-untyped-def]
    u = Utterance(decoder, 16000, 0)
    u.feed(samples.astype("<i2").tobytes())
    return " ".join(w[0] for w in u.end()[1])


def measure(decoder, label: str, probe: list) -> dict:  # type: ignore[no-untyped-def,type-arg]
    said = got = 0
    outs = []
    for sentence, samples in probe:
        text = decode(decoder, samples)
        n = sum(w in ("um", "uh") for w in sentence.split())
        said, got = said + n, got + min(n, sum(w in FILLERS for w in text.split()))
        outs.append(text)
    clips = [(read_wav(p)[0], r) for p, r in librivox()]
    wer = corpus_wer((r, decode(decoder, a)) for a, r in clips)
    return {"config": label, "filler_recall": f"{got}/{said}", "librivox_wer": round(wer, 4), "probe": outs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fillprob", type=float, action="append", default=[])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        probe = []
        for i, s in enumerate(SENTENCES):
            subprocess.run(["flite", "-voice", "slt", "-t", s, "-o", f"{tmp}/{i}.wav"], check=True)
            probe.append((s, read_wav(f"{tmp}/{i}.wav", 16000)[0]))
        print(json.dumps(measure(new_decoder(), "service", probe)), flush=True)
        from pocketsphinx import get_model_path
        noise = open(os.path.join(get_model_path(), "en-us", "en-us", "noisedict")).read()
        with open(f"{tmp}/noisedict", "w") as f:
            f.write(noise + "++UM++ AH M\n++UH++ AH\n")
        for p in args.fillprob:
            print(json.dumps(measure(new_decoder(fdict=f"{tmp}/noisedict", fillprob=p), f"fdict fillprob={p}", probe)),
                  flush=True)


if __name__ == "__main__":
    main()
