"""End-of-turn benchmarks: holds and ends per policy, and the turn model's cost batched vs alone.

    python -m tests.load.turns holds        # measure 1: cut-offs at holds, wait after true ends
    python -m tests.load.turns inference    # measure 3: turn inferences/s on one core, batch vs one

Holds and ends. Samples are single-speaker stretches of real speech: the librivox clips, the cards,
goforward/forever (each one complete utterance), lecture_60s_16k.wav (one long turn) and each
RTTM turn of the phone call cut out on its own (the mix is mono, so the other voice would otherwise
end it). Each is followed by 3.5 s of its own room tone (its quietest 200 ms, tiled). Pauses come
from the service's own code (`services.vad.cli.turn_pauses`: Silero + TurnTracker + Smart Turn at
200 ms): a pause after which the sample's speech resumes is a HOLD (the candidate is still
talking); the pause after the last speech is the END. Per policy, a hold is cut off when the policy
would commit before the pause ends; the wait after an end is when the policy commits, from the end
of speech (the pause start), not counting model compute (~60-90 ms, see `inference`).
- VAD only 1.2 s / 0.5 s: commit when the pause reaches 1200 / 500 ms.
- Smart Turn alone (Pipecat's setup): at 200 ms, commit if p >= 0.5, else at 3 s.
- fused (services/orchestrator/conversation/turn_policy.py): at 200 ms, decide(p, transcript so
  far) -> COMMIT now, HOLD -> commit at 3 s, UNDECIDED -> commit at 1.2 s. The transcript is
  pocketsphinx's (services/stt/decoder.py settings) hypothesis of the sample up to the pause.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.common.audio import read_wav
from services.orchestrator.conversation.turn_policy import Decision, TurnPolicyConfig, decide
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
    audio: np.ndarray
    ends: bool = True  # False: the recording stops mid-speech (its last pause is no true end)


def room_tone(audio: np.ndarray, seconds: float) -> np.ndarray:
    frames = audio[:len(audio) // 3200 * 3200].reshape(-1, 3200).astype(np.float64)
    quiet = frames[int(np.argmin((frames ** 2).mean(axis=1)))].astype(np.int16)
    quiet = np.concatenate([quiet, quiet[::-1]])  # mirrored: no click where the copies join
    return np.tile(quiet, int(seconds * RATE) // len(quiet) + 1)[:int(seconds * RATE)]


def samples() -> list[Sample]:
    out: list[Sample] = []
    names = sorted((SPEECH / "librivox").glob("*.wav")) + sorted((SPEECH / "cards").glob("*.wav")) + [
        SPEECH / "goforward_16k.wav", SPEECH / "forever_16k.wav", SPEECH / "lecture_60s_16k.wav"]
    for path in names:
        audio = read_wav(path, RATE)[0]
        out.append(Sample(path.name, np.concatenate([audio, room_tone(audio, TAIL_S)]),
                          ends=path.name != "lecture_60s_16k.wav"))  # cut at 60 s mid-sentence
    phone = read_wav(SPEECH / "phone_call_2spk_16k.wav", RATE)[0]
    tone = room_tone(phone, TAIL_S)
    for k, line in enumerate((SPEECH / "phone_call_2spk_16k.rttm").read_text().splitlines()):
        start, dur = float(line.split()[3]), float(line.split()[4])
        cut = phone[max(0, int((start - 0.1) * RATE)):int((start + dur) * RATE)]
        out.append(Sample(f"phone_turn_{k}", np.concatenate([cut, tone])))
    return out


class Transcriber:
    """pocketsphinx hypotheses of a sample at given offsets (one streaming pass)."""

    def __init__(self) -> None:
        from services.stt.decoder import new_decoder

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

POLICIES = ("vad_1200ms", "vad_500ms", "smart_turn", "fused")


def commit_ms(policy: str, p: float, text: str, scored_ms: int, cfg: TurnPolicyConfig) -> int:
    """When (ms after the pause start) the policy commits if the silence lasts."""
    if policy == "vad_1200ms":
        return 1200
    if policy == "vad_500ms":
        return 500
    if policy == "smart_turn":
        return scored_ms if p >= 0.5 else 3000
    verdict = decide(p, text, cfg)
    return scored_ms if verdict.decision is Decision.COMMIT else verdict.wait_ms


def holds_and_ends() -> dict:
    cfg = TurnPolicyConfig()
    silero, model, stt = SileroModel(), SmartTurnModel(), Transcriber()
    params = Params(min_silence_ms=1200)
    holds: list[dict] = []
    ends: list[dict] = []
    missed_ends = []
    for sample in samples():
        pauses = turn_pauses(sample.audio, RATE, params, silero, model)
        speech_end = len(sample.audio) - int(TAIL_S * RATE)
        texts = stt.at(sample.audio, [int(p["at_s"] * RATE) for p in pauses])
        for pause, text in zip(pauses, texts):
            rec = {"sample": sample.name, "at_s": pause["at_s"], "pause_ms": pause["pause_ms"],
                   "p": pause["probability"], "text": " ".join(text.split()[-6:]), "scored_ms": 200}
            start, stop = pause["at_s"] * RATE, pause["at_s"] * RATE + pause["pause_ms"] * RATE / 1000
            if stop < speech_end:      # the speaker went on within the recording
                holds.append(rec)
            elif start < speech_end + 0.3 * RATE and sample.ends:  # the last pause (Silero's may start a
                ends.append(rec)                                     # little after the labelled end)
                break                              # later "pauses" are noises in the room tone
        if sample.ends and (not ends or ends[-1]["sample"] != sample.name):
            missed_ends.append(sample.name)
    report: dict = {"samples_without_a_scored_end": missed_ends}
    groups = {"all": lambda r: True, "read_speech": lambda r: not r["sample"].startswith(("phone", "lecture")),
              "lecture": lambda r: r["sample"].startswith("lecture"), "phone_turns": lambda r: r["sample"].startswith("phone")}
    for group, member in groups.items():
        g_holds, g_ends = [h for h in holds if member(h)], [e for e in ends if member(e)]
        report[group] = {"holds": len(g_holds), "ends": len(g_ends)}
        for policy in POLICIES:
            cut = [h for h in g_holds if commit_ms(policy, h["p"], h["text"], h["scored_ms"], cfg) < h["pause_ms"]]
            waits = sorted(commit_ms(policy, e["p"], e["text"], e["scored_ms"], cfg) for e in g_ends)
            report[group][policy] = {
                "cut_offs": len(cut), "cut_off_share": round(len(cut) / max(1, len(g_holds)), 3),
                "end_wait_median_ms": statistics.median(waits) if waits else None,
                "end_wait_p90_ms": waits[min(len(waits) - 1, int(0.9 * len(waits)))] if waits else None}
    # Lever: commit only once the pause has lasted X ms (the score taken at 200 ms is reused).
    report["commit_pause_sweep"] = {}
    for policy in ("smart_turn", "fused"):
        for x in (200, 400, 600, 800):
            cut = sum(1 for h in holds if commit_ms(policy, h["p"], h["text"], x, cfg) < h["pause_ms"])
            waits = sorted(commit_ms(policy, e["p"], e["text"], x, cfg) for e in ends)
            report["commit_pause_sweep"][f"{policy}@{x}ms"] = {
                "cut_off_share": round(cut / max(1, len(holds)), 3), "end_wait_median_ms": statistics.median(waits),
                "end_wait_p90_ms": waits[min(len(waits) - 1, int(0.9 * len(waits)))]}
    report["detail"] = {"holds": holds, "ends": ends}
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
    args = p.parse_args()
    report = holds_and_ends() if args.what == "holds" else inference()
    if args.what == "holds" and not args.detail:
        report.pop("detail")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
