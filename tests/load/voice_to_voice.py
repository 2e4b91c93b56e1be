"""Voice to voice in real Chromium on the full offline stack (issue 14, "Measure" item 2).

    python -m tests.load.voice_to_voice --rounds 2          # the benchmark (docs/benchmarks.md)
    python -m tests.load.voice_to_voice --rounds 1 --answers 2 --modes on   # a quick look
    python -m tests.load.voice_to_voice --rounds 2 --modes on,unlearned,off  # pause learning A/B too

Starts the offline stack as `make run` runs it (tests/support/stack.py: redis-server, VAD, STT,
LLM, TTS, orchestrator, media as processes), then per session opens the candidate page in headless
Chromium (tests/media/browser.py) with a fake microphone playing a WAV of several answers built from
real recordings (librivox sentences with thinking pauses of 0.3-1.5 s inserted mid-sentence at word
boundaries (alignment.json), a sentence-boundary pause inside one answer, and lecture_60s_16k.wav
stretches with their own natural pauses), separated by long gaps in which the interviewer answers.

Everything is measured from the page's ?record=1 capture, which holds what the page played and
what the microphone sent on one audio clock:
- end of speech -> first interviewer audio: from the last loud 10 ms of the candidate's answer
  (-40 dBFS) to the first loud 10 ms (-45 dBFS) the page played after it;
- cut-ins: interviewer audio starting (after >= 300 ms of quiet) inside an answer, i.e. while the
  candidate still had words to say; each is attributed to the pause before it;
- overlaps: the previous reply was still audible when an answer began (the gap was too short); such
  answers are reported, not counted as cut-ins.

Turn-taking on (semantic end of turn, the defaults), off (silence only, 1.2 s) and, if asked for,
on without learning the candidate's pauses (`unlearned`: learn_pauses=false) are separate interviews
on the same stack, alternated (round 1 on, off; round 2 off, on; ...). The interview
plan is inline: one conversational phase with more questions than answers, so the scripted
interviewer replies to every answer (acknowledgement + next question; it says NO_REPLY only in
CODING mode, which this plan never enters).

Stage budget per answered turn, from the interview's TurnMetrics events (WatchEvents: the first
one after each answer's end that was not interrupted) and the VAD's turn-model histogram (its
/metrics, mean per session): pause (the silence the policy waits for before it decides:
turn_pause_ms, or the VAD's min silence), finalize (-> STT final), commit after the pause (finalize
+ the policy's decision or fallback wait), LLM first token (after the final), TTS first audio (after
the first token), commit -> first audio sent, and "outside" = heard delay - the orchestrator's span
(speech end -> first audio sent): uplink, VAD framing and turn-model inference before the event
arrives, media, WebRTC, the page's jitter buffer and playout.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interview.v1 import common_pb2, interviews_pb2
from services.common.audio import read_wav, window_dbfs, write_wav
from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.plans import from_dict
from tests.load.harness import FIXTURES, Histogram, emit
from tests.media.browser import ARTIFACTS, Recording, chromium, join_call, mic_file, recording
from tests.support.stack import OfflineStack

RATE = 16000
MIC_DBFS, AGENT_DBFS, WIN_MS = -40.0, -45.0, 10  # as tests/media/test_fullstack.py measures
ONSET_QUIET_S = 0.3  # interviewer audio "starts" after at least this much quiet
PAUSE_MIN_S = 0.2    # quiet stretches inside an answer counted as its pauses
MERGE_S = 4.0        # quiet shorter than this is inside an answer (its pauses are <= 1.5 s; gaps 10 s)
SUSPECT_S = 0.3      # an answer whose captured length differs more than this from the file's is not counted
LIBRIVOX = FIXTURES / "librivox"
LECTURE = FIXTURES / "lecture_60s_16k.wav"
BENCH = [["--rounds", "2"]]  # make bench (tests/load/bench.py)
QUESTIONS = ["What have you been working on lately?", "What was the hardest bug you fixed?",
             "How do you test your code?", "How do you review a teammate's change?",
             "What would you improve in your last project?", "How do you handle a production incident?",
             "What do you do when you disagree with a decision?", "What are you learning right now?",
             "How do you plan a large change?", "What makes a good code review?"]


def plan() -> common_pb2.Plan:
    """One conversational phase with more questions than answers: every answer gets a reply."""
    return from_dict({
        "name": "voice-to-voice", "title": "Voice to voice benchmark", "role": "Software Engineer",
        "greeting": f"Hi! Thanks for joining. {QUESTIONS[0]}",
        "phases": [{"id": "talk", "title": "Experience", "kind": "technical_screening", "time_budget_s": 3600,
                    "questions": [{"id": f"q{i}", "text": q} for i, q in enumerate(QUESTIONS)]},
                   {"id": "wrap-up", "title": "Wrap-up", "kind": "wrap_up", "time_budget_s": 60}]}, "voice_to_voice")


# ---- the candidate's answers ----

@dataclass
class Answer:
    name: str
    audio: np.ndarray   # int16, 16 kHz
    inserted: list[str]  # what was inserted where, e.g. "1.5 s after 'and'"


def room_tone(audio: np.ndarray, seconds: float) -> np.ndarray:
    """The clip's quietest 200 ms, mirrored and tiled (no click where the copies join)."""
    frames = audio[:len(audio) // 3200 * 3200].reshape(-1, 3200).astype(np.float64)
    quiet = frames[int(np.argmin((frames ** 2).mean(axis=1)))].astype(np.int16)
    quiet = np.concatenate([quiet, quiet[::-1]])
    return np.tile(quiet, int(seconds * RATE) // len(quiet) + 1)[:int(seconds * RATE)]


def librivox(clip: str, pauses: dict[str, float]) -> tuple[np.ndarray, list[str]]:
    """A librivox sentence with thinking pauses (its own room tone) after the given words."""
    name = f"sense_and_sensibility_01_austen_64kb-{clip}"
    audio = read_wav(LIBRIVOX / f"{name}.wav", RATE)[0]
    words = json.loads((LIBRIVOX / "alignment.json").read_text())[name]
    pieces, done, at, notes = [], set(), 0, []
    for word, _, end in words[:-1]:
        if word in pauses and word not in done:
            cut = int(end * RATE)
            pieces += [audio[at:cut], room_tone(audio, pauses[word])]
            notes.append(f"{pauses[word]:g} s after '{word}'")
            done.add(word)
            at = cut
    pieces.append(audio[at:int((words[-1][2] + 0.15) * RATE)])
    return np.concatenate(pieces), notes


def lecture(start_s: float, end_s: float) -> np.ndarray:
    return read_wav(LECTURE, RATE)[0][int(start_s * RATE):int(end_s * RATE)]


def answers() -> list[Answer]:
    """Long answers with phrase pauses. Mid-sentence pauses are thinking pauses (the candidate
    has words to say); the lecture keeps its own pauses; one answer pauses between sentences."""
    a1, n1 = librivox("0870", {"dashwood": 0.5, "consider": 1.5, "prudently": 0.8})
    a2, n2 = librivox("0890", {"and": 1.5, "selfish": 0.4})
    a4, n4 = librivox("0920", {"woman": 1.2, "respectable": 0.3})
    a5a, _ = librivox("0880", {})
    a5b, n5 = librivox("0930", {"even": 0.6})
    a5 = np.concatenate([a5a, room_tone(a5a, 1.0), a5b])
    return [Answer("0870", a1, n1), Answer("0890", a2, n2),
            Answer("lecture 0-6.7 s", lecture(0.0, 6.8), ["natural pauses"]),
            Answer("0920", a4, n4),
            Answer("0880+0930", a5, ["1 s between sentences", *n5]),
            Answer("lecture 9.2-46.5 s", lecture(9.2, 46.5), ["natural pauses"])]


@dataclass
class Layout:
    path: Path
    starts: list[float]  # answer i's first loud 10 ms, in the file (s)
    ends: list[float]    # ... and its last


def loud(samples: np.ndarray, rate: int, dbfs: float) -> np.ndarray:
    """Per 10 ms window: louder than `dbfs`."""
    win = rate * WIN_MS // 1000
    return window_dbfs(samples[:len(samples) // win * win], rate, WIN_MS) > dbfs


def mic_layout(items: list[Answer], lead_s: float, gap_s: float) -> Layout:
    """The microphone file: lead silence (the greeting plays), then each answer and a gap."""
    parts, starts, ends, at = [np.zeros(int(lead_s * RATE), np.int16)], [], [], lead_s
    for a in items:
        on = np.nonzero(loud(a.audio, RATE, MIC_DBFS))[0]
        starts.append(at + on[0] * WIN_MS / 1000)
        ends.append(at + (on[-1] + 1) * WIN_MS / 1000)
        parts += [a.audio, np.zeros(int(gap_s * RATE), np.int16)]
        at += (len(a.audio) + int(gap_s * RATE)) / RATE
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"v2v-{os.getpid()}.wav"
    write_wav(path, np.concatenate(parts), RATE)
    return Layout(mic_file(path, lead_silence_s=0.0, tail_silence_s=0.0), starts, ends)


# ---- measuring the page's capture ----

@dataclass
class Measured:
    answer: str
    start: float                 # wall clock of the answer's first / last loud 10 ms (mic)
    end: float
    v2v_ms: float | None = None  # end of speech -> first interviewer audio heard
    heard_at: float | None = None
    overlap: bool = False        # the previous reply was still audible when the answer began
    talking_at_end: bool = False  # interviewer audible as the answer ended (no clean measurement)
    cut_ins: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)  # pause lengths inside the answer (s)
    metrics: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, float] = field(default_factory=dict)
    entries_inside: int = 0      # candidate entries written mid-answer (a commit there, heard or not)
    suspect: str = ""            # the capture does not hold the answer as sent (not counted)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of True runs."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]))


def segments(mic: np.ndarray, merge_windows: int) -> list[tuple[int, int]]:
    """Loud runs of the captured microphone merged across quiet shorter than `merge_windows`: one
    per answer (answers are separated by long gaps; their own pauses are short)."""
    out: list[tuple[int, int]] = []
    for s, e in runs(mic):
        if out and s - out[-1][1] < merge_windows:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return [(s, e) for s, e in out if e - s >= 50]  # >= 0.5 s: an answer, not a click


def measure(rec: Recording, layout: Layout, items: list[Answer]) -> list[Measured]:
    """Each answer as the page's capture holds it. Answers are found in the captured microphone
    (not placed by their offset in the file: on a loaded machine Chromium's fake microphone falls
    behind the file, by seconds over a session); one whose captured length differs from the file's
    (the microphone stalled inside it) is marked suspect and not counted."""
    win = rec.rate * WIN_MS // 1000
    t = rec.times[::win][:len(rec.pcm) // win]  # each window's wall-clock start
    mic, agent = loud(rec.mic, rec.rate, MIC_DBFS), loud(rec.pcm, rec.rate, AGENT_DBFS)
    n = min(len(t), len(mic), len(agent))
    t, mic, agent = t[:n], mic[:n], agent[:n]
    quiet = int(ONSET_QUIET_S * 1000 / WIN_MS)
    onsets = [i for i in np.nonzero(agent)[0] if i >= quiet and not agent[i - quiet:i].any()]
    found = segments(mic, int(MERGE_S * 1000 / WIN_MS))
    assert found, "the page recorded no microphone speech"
    if len(found) != len(items):
        print(f"{len(found)} answers in the captured microphone, {len(items)} sent: matched in order",
              file=sys.stderr)
    out = []
    for k, (a, (s0, e0)) in enumerate(zip(items, found)):
        m = Measured(a.name, float(t[s0]), float(t[e0 - 1] + WIN_MS / 1000))
        sent, got = layout.ends[k] - layout.starts[k], m.end - m.start
        if abs(got - sent) > SUSPECT_S:
            m.suspect = f"the answer lasts {got:.2f} s in the capture, {sent:.2f} s in the file"
            print(f"answer {a.name}: {m.suspect}; not counted", file=sys.stderr)
        inside = (t >= m.start) & (t < m.end)
        pauses = [(float(t[s]), float(t[e - 1] + WIN_MS / 1000)) for s, e in runs(inside & ~mic)
                  if (e - s) * WIN_MS / 1000 >= PAUSE_MIN_S]
        m.pauses = [round(e - s, 2) for s, e in pauses]
        m.overlap = bool(agent[(t >= m.start - ONSET_QUIET_S) & (t <= m.start)].any())
        m.talking_at_end = bool(agent[(t >= m.end - ONSET_QUIET_S) & (t <= m.end)].any())
        if not m.overlap:
            for i in onsets:
                if m.start < t[i] < m.end:
                    before = [p for p in pauses if p[0] <= t[i]]
                    p = before[-1] if before else None
                    m.cut_ins.append({"at_s": round(float(t[i]) - m.start, 2),
                                      "pause_s": round(p[1] - p[0], 2) if p else None,
                                      "after_pause_start_ms": round((float(t[i]) - p[0]) * 1000) if p else None})
        nxt = float(t[found[k + 1][0]]) if k + 1 < len(found) else float(t[-1])
        after = [i for i in onsets if m.end <= t[i] < nxt]
        if after and not m.talking_at_end:
            m.heard_at = float(t[after[0]])
            m.v2v_ms = round((m.heard_at - m.end) * 1000)
        out.append(m)
    return out


# ---- TurnMetrics and the stage budget ----

async def interview_events(api: InterviewsClient, iid: str, idle_s: float = 2.0) -> list[interviews_pb2.Event]:
    """Every event of the interview so far (WatchEvents from the start, until it goes quiet)."""
    events: list[interviews_pb2.Event] = []
    stream = api.watch(iid)
    try:
        while True:
            events.append(await asyncio.wait_for(anext(stream), idle_s))
    except (TimeoutError, StopAsyncIteration):
        pass
    finally:
        await stream.aclose()
    return events


def budget(m: Measured, tm: interviews_pb2.TurnMetrics) -> dict[str, float]:
    """The voice-to-voice delay of one answer split into stages (ms). TurnMetrics count from the
    VAD event the turn committed on (vad_stop) and from the orchestrator's speech-end estimate
    (vad_stop - the pause it waited for); what the orchestrator's clock cannot see (uplink, VAD
    framing and model inference before the event arrives, downlink, jitter buffer, playout) is the
    heard delay minus its span. (The TurnMetrics event's own wall-clock stamp is not used to split
    uplink from downlink: on a loaded machine it is written late, by up to ~0.4 s.)"""
    pause = tm.speech_end_to_commit_ms + tm.commit_to_first_audio_ms - tm.first_audio_sent_ms
    commit = tm.speech_end_to_commit_ms - pause  # from vad_stop
    span = tm.speech_end_to_commit_ms + tm.commit_to_first_audio_ms
    b = {"pause": pause, "finalize": tm.stt_final_ms, "commit_after_pause": commit,
         "llm_first_token": tm.llm_first_token_ms - tm.stt_final_ms,
         "tts_first_audio": tm.tts_first_audio_ms - tm.llm_first_token_ms,
         "commit_to_first_audio": tm.commit_to_first_audio_ms, "orchestrator_span": span,
         "outside": (m.v2v_ms or 0) - span}
    return {k: round(v) for k, v in b.items()}


def attach_metrics(measured: list[Measured], events: list[interviews_pb2.Event]) -> None:
    """Each answer's reply metrics: the first TurnMetrics event stamped after its end of speech;
    and how many candidate transcript entries were written while it was still being spoken."""
    user_at = [e.time.ToNanoseconds() / 1e9 for e in events
               if e.HasField("transcript") and e.transcript.role == common_pb2.ROLE_USER]
    for m in measured:
        m.entries_inside = sum(m.start < t < m.end for t in user_at)
    tms = sorted(((e.time.ToNanoseconds() / 1e9, e.turn_metrics) for e in events if e.HasField("turn_metrics")),
                 key=lambda x: x[0])
    for k, m in enumerate(measured):
        nxt = measured[k + 1].start if k + 1 < len(measured) else float("inf")
        for sent_at, tm in tms:
            if m.end < sent_at < nxt and not tm.interrupted:  # the stamp is late, never early
                m.metrics = {f.name: getattr(tm, f.name) for f in tm.DESCRIPTOR.fields
                             if f.name not in ("traceparent", "turn_id")}
                if m.v2v_ms is not None:
                    m.budget = budget(m, tm)
                break


def scrape(port: int, name: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram from a service's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    get = lambda suffix: sum(float(v) for v in re.findall(rf"^{name}_{suffix}(?:{{[^}}]*}})? (\S+)$", text, re.M))
    return get("sum"), get("count")


# ---- one session ----

MODES = {"on": interviews_pb2.TurnTakingConfig(enabled=True),
         "off": interviews_pb2.TurnTakingConfig(enabled=False),
         "unlearned": interviews_pb2.TurnTakingConfig(enabled=True, learn_pauses=False)}


async def session(stack: OfflineStack, api: InterviewsClient, items: list[Answer], layout: Layout, mode: str,
                  label: str) -> dict[str, Any]:
    config = interviews_pb2.InterviewConfig(turn_taking=MODES[mode])
    created = await api.create(plan=plan(), candidate_name="Ada", config=config)
    iid = created.interview.id
    model0 = scrape(stack.ai["vad"].metrics_port, "interviewer_vad_turn_score_seconds")
    load0 = os.getloadavg()
    mic_s = len(read_wav(layout.path)[0]) / 48000
    driver = await asyncio.to_thread(chromium, layout.path)
    try:
        t0 = time.monotonic()
        await join_call(driver, created.join_url)
        print(f"{label}: playing {mic_s:.0f} s of microphone audio", file=sys.stderr, flush=True)
        await asyncio.sleep(max(0.0, mic_s + 1.0 - (time.monotonic() - t0)))
        rec = await asyncio.to_thread(recording, driver)
        await api.end(iid, reason="completed")
    finally:
        await asyncio.to_thread(driver.quit)
    model1 = scrape(stack.ai["vad"].metrics_port, "interviewer_vad_turn_score_seconds")
    ARTIFACTS.mkdir(exist_ok=True)
    write_wav(ARTIFACTS / f"v2v-{label}-heard.wav", rec.pcm, rec.rate)
    write_wav(ARTIFACTS / f"v2v-{label}-mic.wav", rec.mic, rec.rate)
    measured = measure(rec, layout, items)
    events = await interview_events(api, iid)
    attach_metrics(measured, events)
    users = [e.transcript.text for e in events if e.HasField("transcript") and e.transcript.role == common_pb2.ROLE_USER]
    n_model = model1[1] - model0[1]
    return {"label": label, "mode": mode, "turn_taking": mode != "off", "interview_id": iid, "loadavg": [round(x, 2) for x in load0],
            "model_ms_mean": round((model1[0] - model0[0]) / n_model * 1000, 1) if n_model else None,
            "model_calls": int(n_model), "user_entries": users, "answers": [asdict(m) for m in measured]}


# ---- the run ----

def pct(values: list[float], p: float) -> float | None:
    h = Histogram()
    for v in values:
        h.add(v)
    return round(h.percentile(p)) if len(h) else None


def summarize(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = {"on": "turn_taking", "off": "silence_only", "unlearned": "turn_taking_unlearned"}
    for mode in dict.fromkeys(s["mode"] for s in sessions):
        mine = [s for s in sessions if s["mode"] == mode]
        rows = [a for s in mine for a in s["answers"] if not a["suspect"]]
        suspect = sum(1 for s in mine for a in s["answers"] if a["suspect"])
        v2v = [a["v2v_ms"] for a in rows if a["v2v_ms"] is not None]
        stages = {k: pct([a["budget"][k] for a in rows if a["budget"]], 50)
                  for k in ("pause", "finalize", "commit_after_pause", "llm_first_token", "tts_first_audio",
                            "commit_to_first_audio", "orchestrator_span", "outside")}
        model = [s["model_ms_mean"] for s in mine if s["model_ms_mean"]]
        out[names[mode]] = {"answers": len(rows), "suspect_not_counted": suspect, "n": len(v2v), "p50_ms": pct(v2v, 50), "p90_ms": pct(v2v, 90),
                     "v2v_ms": v2v, "cut_ins": sum(len(a["cut_ins"]) for a in rows),
                     "answers_cut_in": sum(1 for a in rows if a["cut_ins"]),
                     "entries_inside": sum(a.get("entries_inside", 0) for a in rows),
                     "overlaps": sum(a["overlap"] for a in rows), "no_reply_heard": sum(a["v2v_ms"] is None for a in rows),
                     "budget_p50_ms": stages, "model_ms_mean": round(statistics.mean(model), 1) if model else None,
                     "speculative": sum(bool(a["metrics"].get("speculative")) for a in rows),
                     "speculative_cancelled": sum(a["metrics"].get("speculative_cancelled", 0) for a in rows)}
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    items = answers()[:args.answers]
    layout = mic_layout(items, args.lead_s, args.gap_s)
    modes = ["on", "off"] if args.modes == "both" else args.modes.split(",")
    load_start = os.getloadavg()
    sessions = []
    with OfflineStack() as stack:
        async with InterviewsClient(stack.orchestrator.address, stack.api_key) as api:
            for r in range(args.rounds):
                order = modes if r % 2 == 0 else modes[::-1]  # alternated: on, off / off, on / ...
                for mode in order:
                    label = f"r{r + 1}-{mode}"
                    s = await session(stack, api, items, layout, mode, label)
                    sessions.append(s)
                    print(json.dumps({k: s[k] for k in ("label", "loadavg", "model_ms_mean")} | {
                        "v2v_ms": [a["v2v_ms"] for a in s["answers"]],
                        "cut_ins": [len(a["cut_ins"]) for a in s["answers"]]}), file=sys.stderr)
    return {"command": " ".join(sys.argv), "rounds": args.rounds, "answers_per_session": len(items),
            "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "summary": summarize(sessions), "sessions": sessions}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.load.voice_to_voice", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="each round: one session per mode, order alternated")
    p.add_argument("--answers", type=int, default=len(answers()), help="answers per session (the first N)")
    p.add_argument("--modes", default="both",
                   help="comma-separated, of " + ", ".join(MODES) + " (both = on,off)")
    p.add_argument("--lead-s", type=float, default=10.0, help="silence before the first answer (the greeting)")
    p.add_argument("--gap-s", type=float, default=10.0, help="silence after each answer (the reply)")
    p.add_argument("--out", type=Path, help="also write the full result JSON here")
    args = p.parse_args(argv)
    if args.modes != "both" and not set(args.modes.split(",")) <= set(MODES):
        p.error(f"--modes {args.modes}: each of {', '.join(MODES)}")
    result = asyncio.run(run(args))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    emit({k: v for k, v in result.items() if k != "sessions"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
