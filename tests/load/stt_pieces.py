"""WER when utterances are FINALIZEd in pieces: `python -m tests.load.stt_pieces [--set key=value ...]`.

In CONVERSATIONAL mode the orchestrator FINALIZEs at every short pause the VAD scores (so the
end-of-turn policy can read the words so far) and joins the pieces' finals into one transcript
entry. pocketsphinx decodes each piece as its own utterance: the LM context and the feature
normalisation start afresh at each, and a word cut at a boundary is lost. This driver measures the
cost, on the real VAD (Silero + the TurnTracker the VAD service runs) and the real offline STT
(the worker's own Worker/Utterance code, in process), two ways on the same audio:

- end:    FINALIZE only where the VAD's SPEECH_STOPPED (min silence 1200 ms) would send it;
- pieces: also at every pause while speaking, as the listener does: once it has lasted 150 ms
  (`--finalize-at-ms`, the orchestrator's ORCHESTRATOR_FINALIZE_AT_PAUSE_MS, counted by the
  listener's own PauseFinalize), and at every pause of >= 200 ms (`turn_pause_ms`) the VAD scores
  that had no FINALIZE yet (`--finalize-at-ms 0`: only there, the listener before).

The STT gate follows the listener: open at SPEECH_STARTED (500 ms pre-roll, never audio already
sent), closed at SPEECH_STOPPED; each clip is followed by 1.5 s of silence (the candidate stops).
Texts are joined with one space, as `Transcript.pending_user` joins them. A piece that starts where
the previous one ended starts from that one's CMN, as OfflineSession does (`--no-carry`: from the
prior, the STT before that fix).

Clips (tests/fixtures/speech): the 5 librivox clips, the same with thinking pauses inserted at word
boundaries (`librivox_paused`: their natural pauses are mostly under 200 ms), the 5 cards, the phone call cut into its
speaker turns (.stm lines of one speaker in a row; the other voice overlaps a little at the
edges), and the 60 s lecture (no reference: reported as the pieces' disagreement with the end
decoding). Prints one JSON line per set and a summary line.
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.common.audio import read_wav
from services.stt.providers.offline import decoder as stt_decoder
from services.stt.providers.offline.worker import Worker
from opentelemetry.trace import INVALID_SPAN

from services.orchestrator.conversation.pause_finalize import PauseFinalize
from services.vad.detector import Detector, Kind, Params
from services.vad.model import WINDOWS, SileroModel, StreamState
from services.vad.turns import TurnTracker
from tests.load.harness import FIXTURES
from tests.load.stt_decoder import parse_value
from tests.support.wer import corpus_wer, normalize

RATE = 16000
CHUNK = 512
PRE_ROLL_MS = 500
TAIL_S = 1.5


@dataclass(frozen=True)
class Clip:
    name: str
    samples: np.ndarray
    reference: str | None


@dataclass(frozen=True)
class Plan:
    """What the listener would send to STT: audio spans, each ended by a FINALIZE."""

    end: list[tuple[int, int]]      # FINALIZE only at SPEECH_STOPPED
    pieces: list[tuple[int, int]]   # and at every scored pause
    inner: int                      # scored pauses the speaker went on after (cuts inside a turn)


def librivox() -> list[Clip]:
    out = []
    for line in (FIXTURES / "librivox" / "transcription").read_text().splitlines():
        if m := re.match(r"<s> (.*) </s> \((.*)\)", line):
            out.append(Clip(f"librivox/{m.group(2)}", read_wav(FIXTURES / "librivox" / f"{m.group(2)}.wav")[0],
                            m.group(1)))
    return out


def librivox_paused(every: int = 3, pauses_ms: tuple[int, ...] = (300, 500, 700)) -> list[Clip]:
    """The librivox clips with thinking pauses: after every `every`-th word (word ends from
    librivox/alignment.json) a pause of 300/500/700 ms (in turn) of the clip's own room tone is
    inserted, so the pieces are cut where a candidate pauses, and the references still hold."""
    alignment = json.loads((FIXTURES / "librivox" / "alignment.json").read_text())
    out = []
    for clip in librivox():
        words = alignment[clip.name.split("/")[1]]
        lead = clip.samples[:max(int(words[0][1] * RATE) - 800, 1600)]
        parts, last, k = [], 0, 0
        for i, (_, _, end) in enumerate(words[:-1]):
            if (i + 1) % every == 0:
                cut = int(end * RATE)
                n = pauses_ms[k % len(pauses_ms)] * RATE // 1000
                parts += [clip.samples[last:cut], np.tile(lead, n // len(lead) + 1)[:n]]
                last, k = cut, k + 1
        parts.append(clip.samples[last:])
        out.append(Clip(clip.name + "+pauses", np.concatenate(parts), clip.reference))
    return out


def cards() -> list[Clip]:
    out = []
    for line in (FIXTURES / "cards" / "cards.transcription").read_text().splitlines():
        if m := re.match(r"<s> (.*) </s> \((.*)\)", line):
            out.append(Clip(f"cards/{m.group(2)}", read_wav(FIXTURES / "cards" / f"{m.group(2)}.wav")[0],
                            m.group(1).strip()))
    return out


def phone_turns(margin_s: float = 0.15) -> list[Clip]:
    """Consecutive .stm lines of one speaker make a turn; cut from the mono mix with a margin."""
    audio = read_wav(FIXTURES / "phone_call_2spk_16k.wav")[0]
    turns: list[list[Any]] = []
    for line in (FIXTURES / "phone_call_2spk_16k.stm").read_text().splitlines():
        _, _, who, start, end, text = line.split(maxsplit=5)
        if turns and turns[-1][0] == who:
            turns[-1][2], turns[-1][3] = float(end), f"{turns[-1][3]} {text}"
        else:
            turns.append([who, float(start), float(end), text])
    return [Clip(f"phone/{i:02d}-{who}", audio[max(0, int((a - margin_s) * RATE)):int((b + margin_s) * RATE)], text)
            for i, (who, a, b, text) in enumerate(turns)]


def lecture() -> list[Clip]:
    return [Clip("lecture_60s", read_wav(FIXTURES / "lecture_60s_16k.wav")[0], None)]


SETS = {"librivox": librivox, "librivox_paused": librivox_paused, "cards": cards, "phone": phone_turns, "lecture": lecture}


def plan(samples: np.ndarray, model: SileroModel, pause_ms: int = 200, min_silence_ms: int = 1200,
         finalize_at_ms: int = 150) -> Plan:
    """Run the VAD (Detector + TurnTracker, the service's params for CONVERSATIONAL) over the clip
    and silence after it; the listener's gate and FINALIZE points, both ways."""
    early = PauseFinalize(finalize_at_ms * RATE // 1000)
    params = Params().updated(min_silence_ms=min_silence_ms, turn_scoring=True, turn_pause_ms=pause_ms)
    audio = np.concatenate([samples, np.zeros(int(TAIL_S * RATE), dtype=np.int16)])
    size = WINDOWS[RATE][0]
    state, detector, tracker = StreamState(RATE), Detector(RATE, params), TurnTracker(RATE)
    end: list[tuple[int, int]] = []
    pieces: list[tuple[int, int]] = []
    sent = 0            # end of the audio STT already has
    gate: int | None = None  # start of the open gate's first unsent sample
    inner, cut_pending = 0, False
    for start in range(0, len(audio) - size + 1, size):
        window, stop = audio[start:start + size], start + size
        p = model.step(state, window)
        events = detector.process(start, stop, p)
        tracker.push(window, start)
        job = tracker.observe(start, stop, p, detector.speaking, params)
        if cut_pending and detector.speaking and p >= params.activation_threshold:
            inner, cut_pending = inner + 1, False
        if gate is not None and detector.speaking and early.window(start, stop, p, params):  # type: ignore[arg-type]
            early.sent(("", None, INVALID_SPAN))  # type: ignore[arg-type]
            pieces.append((piece_from, stop))
            piece_from, cut_pending = stop, True
        for e in events:
            early.reset()
            if e.kind is Kind.STARTED:
                gate = max(e.offset - PRE_ROLL_MS * RATE // 1000, sent)
                piece_from = utt_from = gate
            elif gate is not None:  # SPEECH_STOPPED: FINALIZE and close the gate
                end.append((utt_from, e.decided_at))
                pieces.append((piece_from, e.decided_at))
                sent, gate, cut_pending = e.decided_at, None, False
        if (job is not None and gate is not None and detector.speaking
                and early.take(job.pause_start) is None):  # the listener FINALIZEs here (if not at 150 ms)
            pieces.append((piece_from, job.decided_at))
            piece_from, cut_pending = job.decided_at, True
    if gate is not None:  # never stopped (no silence long enough): the stream's end finalizes
        end.append((utt_from, len(audio)))
        pieces.append((piece_from, len(audio)))
    return Plan(end, pieces, inner)


def transcribe(worker: Worker, audio: np.ndarray, spans: list[tuple[int, int]], carry: bool = True) -> str:
    """Each span is one utterance on the STT worker's decoder, fed in 32 ms chunks; finals joined.
    As OfflineSession does, a span starting where the previous one ended starts from its CMN
    (`carry=False`: from the prior, as before that fix)."""
    texts, previous = [], None
    for a, b in spans:
        pcm = audio[a:b].astype("<i2")
        cmn = previous[1] if carry and previous is not None and previous[0] == a else None
        for i in range(0, len(pcm), CHUNK):
            worker.handle("utt", 0, (RATE, 0, cmn) if i == 0 else None, pcm[i:i + CHUNK].tobytes(), False)
        _, (text, _words, cmn_end) = worker.handle("utt", 0, None, b"", True)
        previous = (b, cmn_end)
        if text:
            texts.append(text)
    return " ".join(texts)


def run_set(name: str, clips: list[Clip], worker: Worker, model: SileroModel, pause_ms: int,
            carry: bool = True, finalize_at_ms: int = 150) -> dict[str, Any]:
    rows = []
    for clip in clips:
        p = plan(clip.samples, model, pause_ms, finalize_at_ms=finalize_at_ms)
        audio = np.concatenate([clip.samples, np.zeros(int(TAIL_S * RATE), dtype=np.int16)])
        rows.append((clip, p, transcribe(worker, audio, p.end), transcribe(worker, audio, p.pieces, carry)))
    out: dict[str, Any] = {"set": name, "clips": len(rows), "pauses_cut": sum(p.inner for _, p, _, _ in rows),
                           "finalizes_end": sum(len(p.end) for _, p, _, _ in rows),
                           "finalizes_pieces": sum(len(p.pieces) for _, p, _, _ in rows)}
    scored = [(c.reference, e, q) for c, _, e, q in rows if c.reference is not None]
    if scored:
        out["words"] = sum(len(normalize(r)) for r, _, _ in scored)
        out["wer_end"] = round(corpus_wer((r, e) for r, e, _ in scored), 4)
        out["wer_pieces"] = round(corpus_wer((r, q) for r, _, q in scored), 4)
        out["wer_delta"] = round(out["wer_pieces"] - out["wer_end"], 4)
    else:  # no reference: how much do the pieces change the end decoding?
        out["disagreement"] = round(corpus_wer((e, q) for _, _, e, q in rows), 4)
    out["changed"] = [{"clip": c.name, "pauses_cut": p.inner, "end": e, "pieces": q}
                      for c, p, e, q in rows if normalize(e) != normalize(q)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="librivox,librivox_paused,cards,phone,lecture", help="comma-separated: " + ",".join(SETS))
    ap.add_argument("--pause-ms", type=int, default=200, help="the VAD's turn_pause_ms")
    ap.add_argument("--finalize-at-ms", type=int, default=150,
                    help="the listener's FINALIZE at the pause (0: only at the turn score)")
    ap.add_argument("--no-carry", action="store_true",
                    help="pieces start from the CMN prior (the STT before the fix), for an A/B")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a decoder setting on top of the service's (e.g. fwdflat=true)")
    args = ap.parse_args()
    stt_decoder.SETTINGS.update({k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)})
    worker, model = Worker(), SileroModel()
    worker.handle("new", 0)
    errors = {"end": 0, "pieces": 0}
    words = 0
    for name in args.sets.split(","):
        result = run_set(name, SETS[name](), worker, model, args.pause_ms, carry=not args.no_carry,
                         finalize_at_ms=args.finalize_at_ms)
        print(json.dumps(result), flush=True)
        if "words" in result:
            words += result["words"]
            errors["end"] += round(result["wer_end"] * result["words"])
            errors["pieces"] += round(result["wer_pieces"] * result["words"])
    if words:
        summary = {"summary": True, "words": words, "wer_end": round(errors["end"] / words, 4),
                   "wer_pieces": round(errors["pieces"] / words, 4)}
        summary["wer_delta"] = round(summary["wer_pieces"] - summary["wer_end"], 4)
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
