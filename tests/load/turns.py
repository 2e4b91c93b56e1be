"""End-of-turn benchmarks: holds and ends per policy, and the turn model's cost batched vs alone.

    python -m tests.load.turns holds        # measure 1: cut-offs at holds, wait after true ends
    python -m tests.load.turns inference    # measure 3: turn inferences/s on one core, batch vs one

Holds and ends. Samples are single-speaker stretches of real speech (SOURCES): natural ones (the
librivox clips, the cards, goforward/forever, lecture_60s_16k.wav, each RTTM turn of the phone call
cut out alone) and constructed ones (a 0.5-1.5 s pause of the recording's own room tone inserted
between two consecutive sentences of one speaker, or after a word of a librivox clip). Each is
followed by 3.5 s of its own room tone. Pauses come from the service's own code
(`services.vad.cli.turn_pauses`: Silero + TurnTracker + Smart Turn at 200 ms): a pause after which
the sample's speech resumes is a HOLD (a constructed sample counts only its inserted pause); the
pause after the last speech is the END. A hold is cut off when a policy would commit before the
pause ends; the wait after an end is when it commits, from the end of speech (the pause start),
not counting model compute (~60-90 ms, see `inference`). Policies (`variants`): VAD only at a
fixed silence; Smart Turn alone (Pipecat's setup: at 200 ms commit if p >= 0.5, else at 3 s);
turn_policy.decide with several configs, on the pocketsphinx hypothesis of the turn up to the
pause; and benchmark-only re-scoring at a later point of the pause (the VAD scores once).
`--records FILE` keeps the scored pauses so configs can be compared without re-scoring.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from services.common.audio import read_wav
from services.orchestrator.conversation.turn_policy import Decision, TurnPolicyConfig, decide, words_of
from services.vad.cli import turn_pauses
from services.vad.detector import Params
from services.vad.model import SileroModel
from services.vad.turn_model import SmartTurnModel, last_window, log_mel

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
RATE = 16000
TAIL_S = 3.5


@dataclass
class Sample:
    name: str
    source: str                # what the report groups by (see SOURCES)
    audio: np.ndarray
    ends: bool = True          # its last pause is a true end (False: cut mid-speech, or a duplicate end)
    inserted: tuple[float, float] | None = None  # constructed hold: the inserted pause (s); only it counts


# Where holds and ends come from. "natural": pauses as recorded. "constructed": a real pause of the
# recording's own room tone inserted into real speech of ONE speaker (stated in every table).
SOURCES = {
    "lecture": "natural: lecture_60s_16k.wav, the pauses Silero sees inside the one long turn",
    "read": "natural: librivox (5), cards (5), goforward, forever: one utterance each (ends only)",
    "phone_turns": "natural: the phone call's 10 RTTM turns, each cut out alone",
    "joined_phone": "constructed: two consecutive .stm sentences of one speaker inside one RTTM turn, "
                    "joined by a 0.5-1.5 s pause of the call's room tone",
    "joined_read": "constructed: two consecutive librivox clips (same reader, same chapter) or cards, "
                   "joined by a 0.5-1.5 s pause of room tone",
    "thinking_pause": "constructed: a 0.5-1.5 s pause of the clip's room tone inserted after a word "
                      "of a librivox clip (every word boundary of alignment.json)",
}
CONSTRUCTED = ("joined_phone", "joined_read", "thinking_pause")
PAUSES_S = (0.5, 1.0, 1.5)  # constructed pause lengths, cycled


def room_tone(audio: np.ndarray, seconds: float) -> np.ndarray:
    frames = audio[:len(audio) // 3200 * 3200].reshape(-1, 3200).astype(np.float64)
    quiet = frames[int(np.argmin((frames ** 2).mean(axis=1)))].astype(np.int16)
    quiet = np.concatenate([quiet, quiet[::-1]])  # mirrored: no click where the copies join
    return np.tile(quiet, int(seconds * RATE) // len(quiet) + 1)[:int(seconds * RATE)]


def _joined(name: str, source: str, first: np.ndarray, second: np.ndarray, tone: np.ndarray, pause_s: float,
            ends: bool) -> Sample:
    gap = tone[:int(pause_s * RATE)]
    at = len(first) / RATE
    return Sample(name, source, np.concatenate([first, gap, second, room_tone(tone, TAIL_S)]), ends=ends,
                  inserted=(at, at + pause_s))


def samples() -> list[Sample]:
    out: list[Sample] = []
    librivox = sorted((SPEECH / "librivox").glob("*.wav"))
    cards = sorted((SPEECH / "cards").glob("*.wav"))
    for path in librivox + cards + [SPEECH / "goforward_16k.wav", SPEECH / "forever_16k.wav",
                                    SPEECH / "lecture_60s_16k.wav"]:
        audio = read_wav(path, RATE)[0]
        lecture = path.name == "lecture_60s_16k.wav"
        out.append(Sample(path.name, "lecture" if lecture else "read",
                          np.concatenate([audio, room_tone(audio, TAIL_S)]), ends=not lecture))  # cut at 60 s
    phone = read_wav(SPEECH / "phone_call_2spk_16k.wav", RATE)[0]
    tone = room_tone(phone, TAIL_S)
    turns = [(float(line.split()[3]), float(line.split()[4]), line.split()[7])
             for line in (SPEECH / "phone_call_2spk_16k.rttm").read_text().splitlines()]
    for k, (start, dur, _who) in enumerate(turns):
        cut = phone[max(0, int((start - 0.1) * RATE)):int((start + dur) * RATE)]
        out.append(Sample(f"phone_turn_{k}", "phone_turns", np.concatenate([cut, tone])))
    # Sentence ends inside one speaker's turn (.stm segments have sentence timings, no word timings):
    # a gap between two consecutive segments of one speaker that lies inside one RTTM turn.
    stm = [(line.split()[2], float(line.split()[3]), float(line.split()[4]))
           for line in (SPEECH / "phone_call_2spk_16k.stm").read_text().splitlines() if line.strip()]
    n = 0
    for (who, s0, e0), (who1, s1, e1) in zip(stm, stm[1:]):
        turn = next(((t0, d) for t0, d, _ in turns if t0 - 0.3 <= s0 and e1 <= t0 + d + 0.3), None)
        if who != who1 or turn is None:
            continue
        split = int((e0 + s1) / 2 * RATE)
        first = phone[max(0, int((min(s0, turn[0]) - 0.1) * RATE)):split]
        second = phone[split:int(max(e1, turn[0] + turn[1]) * RATE)]
        out.append(_joined(f"phone_join_{e0:.2f}", "joined_phone", first, second, tone, PAUSES_S[n % 3], True))
        n += 1
    alignment = json.loads((SPEECH / "librivox" / "alignment.json").read_text())
    clips = {p.stem: read_wav(p, RATE)[0] for p in librivox}
    stems = sorted(clips)
    for k, (a, b) in enumerate(zip(stems, stems[1:])):  # speech from first word start to last word end
        first = clips[a][:int(alignment[a][-1][2] * RATE)]
        second = clips[b][int(alignment[b][0][1] * RATE):]
        out.append(_joined(f"join_{a[-4:]}_{b[-4:]}", "joined_read", first, second, room_tone(clips[a], 2.0),
                           PAUSES_S[n % 3], True))
        n += 1
    card_audio = [read_wav(p, RATE)[0] for p in cards]
    for k, (a, b) in enumerate(zip(card_audio, card_audio[1:])):
        out.append(_joined(f"cards_{k + 1}_{k + 2}", "joined_read", a, b, room_tone(a, 2.0), PAUSES_S[n % 3], True))
        n += 1
    for stem in stems:
        words = alignment[stem]
        for i, (_w, _s, end) in enumerate(words[:-1]):
            cut = int(end * RATE)
            out.append(_joined(f"{stem[-4:]}_after_{i + 1}_{_w}", "thinking_pause", clips[stem][:cut],
                               clips[stem][cut:], room_tone(clips[stem], 2.0), PAUSES_S[n % 3], False))
            n += 1
    return out


class Transcriber:
    """pocketsphinx hypotheses of a sample at given offsets (one streaming pass)."""

    def __init__(self) -> None:
        from services.stt.providers.offline.decoder import new_decoder

        self.decoder = new_decoder()

    def at(self, audio: np.ndarray, offsets: list[int]) -> list[str]:
        d, out, done = self.decoder, [], 0
        d.reinit_feat()
        d.start_utt()
        for off in offsets:
            d.process_raw(audio[done:off].astype("<i2").tobytes(), False, False)
            done = off
            hyp = d.hyp()
            out.append(hyp.hypstr if hyp else "")
        d.end_utt()
        return out


# What `make bench` runs (recorded in docs/benchmarks.md).
BENCH = [["holds"], ["inference"]]

RESCORE_MS = (400, 600, 1000)  # later points in a pause scored too (the VAD scores once, at 200 ms)


def records(only: str | None = None) -> list[dict]:
    """Every hold and end: its pause, the model's score at 200 ms (as the service) and at
    RESCORE_MS, and pocketsphinx's words of the turn up to the pause."""
    silero, model, stt = SileroModel(), SmartTurnModel(), Transcriber()
    params = Params(min_silence_ms=1200)
    out: list[dict] = []
    for sample in samples():
        if only and only not in sample.source:
            continue
        pauses = turn_pauses(sample.audio, RATE, params, silero, model)
        speech_end = len(sample.audio) - int(TAIL_S * RATE)
        texts = stt.at(sample.audio, [int(p["at_s"] * RATE) for p in pauses])
        found_end = False
        for pause, text in zip(pauses, texts):
            start = int(pause["at_s"] * RATE)
            stop = start + pause["pause_ms"] * RATE // 1000
            if stop < speech_end:      # the speaker went on within the recording
                if sample.inserted and not (start / RATE < sample.inserted[1] and stop / RATE > sample.inserted[0]):
                    continue           # a constructed sample counts only its inserted pause
                kind = "hold"
            elif start < speech_end + 0.3 * RATE and sample.ends:  # the last pause (Silero's may start a
                kind = "end"                                          # little after the labelled end)
            else:
                break                  # later "pauses" are noises in the room tone
            later = [ms for ms in RESCORE_MS if ms <= pause["pause_ms"]]
            scores = model.score([sample.audio[:start + ms * RATE // 1000] for ms in later])
            out.append({"sample": sample.name, "source": sample.source, "kind": kind, "at_s": pause["at_s"],
                        "pause_ms": pause["pause_ms"], "p": pause["probability"],
                        "p_at": {str(ms): round(v, 4) for ms, v in zip(later, scores)},
                        "text": " ".join(text.split()[-8:]), "words": len(words_of(text))})
            found_end |= kind == "end"
            if kind == "end":
                break
        if sample.ends and not found_end:
            out.append({"sample": sample.name, "source": sample.source, "kind": "missed_end"})
        if sample.inserted and not any(r["sample"] == sample.name and r["kind"] == "hold" for r in out):
            out.append({"sample": sample.name, "source": sample.source, "kind": "missed_hold"})
    return out


def turn_text(rec: dict) -> str:
    """The turn's words for decide(): the record keeps the last 8; the earlier ones only count."""
    tail = rec["text"].split()
    return " ".join(["w"] * max(0, rec["words"] - len(tail)) + tail)


def policy_commit_ms(rec: dict, cfg: TurnPolicyConfig, scored_ms: int = 200) -> int:
    """When (ms after the end of speech) turn_policy.decide commits if the silence lasts: the
    verdict at the 200 ms score, acted on after its wait (COMMIT: 0, or a long answer's delay)."""
    verdict = decide(rec["p"], turn_text(rec), cfg)
    return max(scored_ms, verdict.wait_ms)


def rescored_commit_ms(rec: dict, cfg: TurnPolicyConfig, at_ms: int) -> int:
    """Benchmark-only variant (the VAD scores a pause once): a COMMIT at 200 ms is confirmed by a
    second score at `at_ms` into the pause; not confirmed -> the undecided fallback."""
    first = policy_commit_ms(rec, cfg)
    if first > 200:
        return first
    p2 = rec["p_at"].get(str(at_ms))
    if p2 is None:               # speech resumed before the second score: no commit in this pause
        return at_ms
    return at_ms if decide(p2, turn_text(rec), cfg).decision is Decision.COMMIT else cfg.undecided_max_wait_ms


EVENT_DELAY_MS = 130  # speech again -> the session hears it (the listener's SpeechResumed: 128 ms of voiced windows)


def learned_commit_ms(recs: list[dict], cfg: TurnPolicyConfig) -> dict[tuple[str, float], int]:
    """The default policy with the candidate's pauses learned (end_of_turn.PauseLearning), each
    recording's pauses in order: a hold the policy would commit in (cut off, or a COMMIT still
    waiting) is a false end that teaches its length; an end resets nothing (a new recording is a
    new candidate). Only the lecture (16 holds in one turn) and the joined samples have more than
    one pause, so elsewhere this equals the default."""
    out: dict[tuple[str, float], int] = {}
    learned, sample = 0, ""
    for r in recs:
        if r["kind"] not in ("hold", "end"):
            continue
        if r["sample"] != sample:
            learned, sample = 0, r["sample"]
        v = decide(r["p"], turn_text(r), cfg, min_wait_ms=learned)
        out[(r["sample"], r["at_s"])] = when = max(200, v.wait_ms)
        if r["kind"] == "hold" and v.decision is Decision.COMMIT:  # judged complete, and the candidate went on
            gap = r["pause_ms"] + EVENT_DELAY_MS  # it went on at the pause's end, cut off or not
            if gap <= cfg.learn_max_ms:
                learned = max(learned, min(cfg.learn_max_ms, gap + cfg.learn_margin_ms))
    return out


def variants(recs: list[dict] | None = None) -> dict[str, Callable[[dict], int]]:
    """Policy name -> commit time (ms after the end of speech) of a record."""
    d = TurnPolicyConfig(long_answer_words=0, long_answer_commit_ms=0,  # the fused policy before this change
                         lean_incomplete_wait_ms=0)
    out: dict[str, Callable[[dict], int]] = {
        "VAD only 1.2 s": lambda r: 1200,
        "VAD only 0.5 s": lambda r: 500,
        "VAD only 1.6 s": lambda r: 1600,
        "VAD only 2.0 s": lambda r: 2000,
        "Smart Turn alone (p >= 0.5 at 200 ms, else 3 s)": lambda r: 200 if r["p"] >= 0.5 else 3000,
        "fused (before: commit 0.8)": lambda r: policy_commit_ms(r, d),
    }
    for t in (0.9, 0.95, 0.98):
        c = replace(d, commit_probability=t, complete_text_probability=t)
        out[f"fused, commit threshold {t}"] = lambda r, c=c: policy_commit_ms(r, c)
    for x in (600, 800, 1000, 1200, 1600):
        c = replace(d, long_answer_words=1, long_answer_commit_ms=x)
        out[f"fused, every COMMIT waits {x} ms"] = lambda r, c=c: policy_commit_ms(r, c)
    for n in (8, 16, 25):
        for x in (800, 1200, 1600):
            c = replace(d, long_answer_words=n, long_answer_commit_ms=x)
            out[f"fused, COMMIT on >= {n} words waits {x} ms"] = lambda r, c=c: policy_commit_ms(r, c)
    for at in RESCORE_MS:
        out[f"fused, COMMIT re-scored at {at} ms (needs a VAD change)"] = lambda r, at=at: rescored_commit_ms(r, d, at)
    c = replace(d, lean_incomplete_wait_ms=2000)
    out["fused, UNDECIDED with p < 0.5 waits 2 s"] = lambda r, c=c: policy_commit_ms(r, c)
    c = replace(d, long_answer_words=25, long_answer_commit_ms=1200)
    out["fused, COMMIT on >= 25 words waits 1200 ms, UNDECIDED 1.2 s"] = lambda r, c=c: policy_commit_ms(r, c)
    out["default (TurnPolicyConfig())"] = lambda r: policy_commit_ms(r, TurnPolicyConfig())
    learned = learned_commit_ms(recs or [], TurnPolicyConfig())
    out["default + the candidate's pauses learned (in order, per recording)"] = lambda r: learned[(r["sample"], r["at_s"])]
    return out


def _row(holds: list[dict], ends: list[dict], when: Callable[[dict], int]) -> dict:
    cut = [h for h in holds if when(h) < h["pause_ms"]]
    waits = sorted(when(e) for e in ends)
    return {"holds": len(holds), "cut_offs": len(cut), "cut_off_share": round(len(cut) / max(1, len(holds)), 3),
            "ends": len(ends), "end_wait_median_ms": statistics.median(waits) if waits else None,
            "end_wait_p90_ms": waits[min(len(waits) - 1, int(0.9 * len(waits)))] if waits else None,
            "cut": [f"{h['sample']}@{h['at_s']}" for h in cut]}


def holds_and_ends(recs: list[dict]) -> dict:
    seen: set[str] = set()   # a constructed pause counts once (noise in a room tone can split it in two)
    holds = [r for r in recs if r["kind"] == "hold" and not (r["source"] in CONSTRUCTED and r["sample"] in seen)
             and not seen.add(r["sample"])]
    ends = [r for r in recs if r["kind"] == "end"]
    natural_ends = [e for e in ends if not e["source"].startswith("joined")]
    report: dict = {"sources": SOURCES,
                    "n": {src: {"holds": sum(1 for h in holds if h["source"] == src),
                                "ends": sum(1 for e in ends if e["source"] == src)} for src in SOURCES},
                    "missed": [f"{r['kind']}: {r['sample']}" for r in recs if r["kind"].startswith("missed")]}
    hard = [h for h in holds if h["source"] in ("lecture", "joined_phone", "joined_read")]
    table: dict = {}
    for name, when in variants(recs).items():
        table[name] = {
            "all holds / natural ends": _row(holds, natural_ends, when),
            "all holds / all ends": _row(holds, ends, when),
            "sentence-end holds (lecture + joined) / all ends": _row(hard, ends, when),
            "per source": {src: _row([h for h in holds if h["source"] == src], [e for e in ends if e["source"] == src],
                                     when) for src in SOURCES}}
    report["policies"] = table
    return report


def inference(seconds: float = 8.0) -> dict:
    """Turn inferences per second on one core (this process pinned), one at a time vs batches of
    8 and 16, alternated in the same run; features included (they are part of every score)."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    model = SmartTurnModel()
    audio = read_wav(SPEECH / "lecture_60s_16k.wav", RATE)[0]
    rows = [last_window(audio[k * 16000:k * 16000 + 8 * RATE]) for k in range(16)]
    model.run(log_mel(np.stack(rows[:1])))  # warm-up
    out: dict[str, list[float]] = {"batch_1": [], "batch_8": [], "batch_16": []}
    for _round in range(2):
        for batch in (1, 8, 16):
            done, cpu0, t0 = 0, time.process_time(), time.perf_counter()
            while time.perf_counter() - t0 < seconds / 6:
                model.run(log_mel(np.stack(rows[:batch])))
                done += batch
            out[f"batch_{batch}"].append(done / (time.process_time() - cpu0))
    rates = {k: round(statistics.mean(v), 2) for k, v in out.items()}
    return {"inferences_per_cpu_second": rates,
            "batch_16_vs_1": round(rates["batch_16"] / rates["batch_1"], 3),
            "ms_cpu_per_inference": {k: round(1000 / v, 1) for k, v in rates.items()}}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.load.turns", description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["holds", "inference"])
    p.add_argument("--detail", action="store_true", help="print every hold and end too")
    p.add_argument("--records", type=Path, help="holds: read the scored pauses from this JSON file if it "
                                                   "exists, else score them and write it (tune without re-scoring)")
    p.add_argument("--only", help="holds: score only the sources whose name contains this")
    args = p.parse_args()
    if args.what == "inference":
        print(json.dumps(inference(), indent=1))
        return
    if args.records and args.records.exists():
        recs = json.loads(args.records.read_text())
    else:
        recs = records(args.only)
        if args.records:
            args.records.write_text(json.dumps(recs))
    report = holds_and_ends(recs)
    if args.detail:
        report["detail"] = recs
    else:
        for row in report["policies"].values():
            for group in [row, *row["per source"].values()]:
                for cell in group.values():
                    if isinstance(cell, dict):
                        cell.pop("cut", None)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
