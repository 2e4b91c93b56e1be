"""When the candidate's turn is over: the one place that says "answer now".

Semantic (CONVERSATIONAL, turn-taking on, the VAD has its end-of-turn model): at each short pause
the VAD scores the turn (TurnPaused) and the listener FINALIZEs the words so far; once that
FINALIZE is answered, `turn_policy.decide` combines the score, the transcript of the whole turn so
far (every piece since the last reply) and the context. COMMIT → the turn is over once the pause has
lasted the verdict's wait (0 = now; longer for a long answer); HOLD / UNDECIDED → keep listening and
commit anyway after the verdict's wait. Waits count from the end of speech, on the injected clock;
the candidate speaking again cancels them. The VAD's own SPEECH_STOPPED (its min silence) does not
commit a scored pause (a HOLD outlasts it); one whose score has not come yet (a loaded VAD) waits
for the late score up to `unscored_wait_ms`.

Silence only (CODING, turn-taking off, or no model in the VAD): SPEECH_STOPPED commits, as before.

The candidate's own pauses (`PauseLearning`, TurnTakingConfig.learn_pauses, default on): when the
candidate goes on after a pause the policy judged complete (COMMIT) — the reply was withdrawn, or
it was a barge-in, or the COMMIT's wait had not run out yet — the pause was theirs, not the end:
from then on COMMIT and UNDECIDED verdicts wait at least that pause + `learn_margin_ms` (at most
`learn_max_ms`); each answer without such a false end scales the learned wait by `learn_decay`.
A candidate who never pauses mid-answer keeps the fast commit; one who does is not cut off twice
at the same pause length. Per session (a reconnect starts afresh).

`committed` is what Floor.maybe_reply asks; it holds the timings for TurnMetrics.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from interview.v1 import interviews_pb2
from services.common.clock import Clock, Timer
from services.orchestrator.conversation.heard import TurnPaused
from services.orchestrator.conversation.turn_policy import Decision, TurnPolicyConfig, Verdict, decide, words_of

log = logging.getLogger("conversation.end_of_turn")


class PauseLearning:
    """How long this candidate's pauses inside an answer last, learned from false ends."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.on = True
        self.wait_ms = 0  # COMMIT and UNDECIDED wait at least this
        self._complete_end: float | None = None  # end of speech of the latest pause judged COMMIT

    def judged_complete(self, speech_end: float | None) -> None:
        self._complete_end = speech_end

    def spoke(self, cfg: TurnPolicyConfig, false_end: bool) -> None:
        """The candidate speaks (again) after a pause judged complete: `false_end` if the reply to it
        was not heard out yet (still waiting to commit, withdrawn, or a barge-in), else a new answer."""
        end, self._complete_end = self._complete_end, None
        if end is None or not self.on:
            return
        gap_ms = int((self.clock.monotonic() - end) * 1000)
        if false_end and gap_ms <= cfg.learn_max_ms:
            learned = min(cfg.learn_max_ms, gap_ms + cfg.learn_margin_ms)
            if learned > self.wait_ms:
                self.wait_ms = learned
                log.info("pause learned: the candidate went on after a pause judged complete",
                         extra={"pause_ms": gap_ms, "wait_ms": learned})
        else:
            self.wait_ms = int(self.wait_ms * cfg.learn_decay)


def policy_config(t: interviews_pb2.TurnTakingConfig) -> TurnPolicyConfig:
    """The interview's thresholds (defaults filled in: modes.turn_taking) as the policy's config."""
    return TurnPolicyConfig(commit_probability=t.commit_threshold, hold_probability=t.hold_threshold,
                            undecided_max_wait_ms=t.undecided_max_wait_ms, hold_max_wait_ms=t.hold_max_wait_ms)


class EndOfTurn:
    def __init__(self, clock: Clock, on_commit: Callable[[], None]):
        self.clock, self._on_commit = clock, on_commit
        self.semantic = False         # mode and config ask for the end-of-turn model
        self.model_available = True   # False once the VAD said it has none (silence only then)
        self.cfg = TurnPolicyConfig()
        self.language = "en"
        self.committed = False
        self.pause: TurnPaused | None = None
        self.verdict: Verdict | None = None
        self.speech_end: float | None = None   # monotonic estimate of the end of the candidate's speech
        self.committed_at: float | None = None
        self.reason = ""
        self._timer: Timer | None = None
        self.learning = PauseLearning(clock)
        self._last_pause_scored = False  # the utterance's latest pause got its score (a late one is not awaited)
        # the last FINALIZE answered, the turn's words then, and the held-back ids it covers
        self._answered: tuple[str, str, tuple[str, ...]] = ("", "", ())

    @property
    def on(self) -> bool:
        return self.semantic and self.model_available

    def configure(self, semantic: bool, cfg: TurnPolicyConfig, language: str, learn_pauses: bool = True) -> None:
        self.semantic, self.cfg, self.language = semantic, cfg, language
        self.learning.on = learn_pauses

    def unavailable(self) -> None:
        self.model_available = False  # the listener logged it once

    # ---- what the candidate does ----

    def speech_started(self, replying: bool = False) -> None:
        """A new VAD utterance; `replying`: an agent turn is on (being prepared or heard)."""
        self.learning.spoke(self.cfg, replying or self._waiting_to_commit())
        self._reset()
        self._last_pause_scored = False

    def resumed(self, replying: bool = False) -> None:
        """Speech again after a scored pause: the turn goes on (a pending fallback is cancelled)."""
        if self.pause is not None or self._timer is not None:
            log.info("turn resumed", extra={"verdict": self.verdict.decision.value if self.verdict else "",
                                            "committed": self.committed})
        self.learning.spoke(self.cfg, replying or self._waiting_to_commit())
        self._reset()
        self._last_pause_scored = False

    def paused(self, e: TurnPaused) -> None:
        log.info("turn scored", extra={"probability": round(e.probability, 3), "late": e.after_stop})
        if self.committed and e.after_stop:
            return  # the wait for a late score is over
        self._reset()
        self.pause, self._last_pause_scored = e, True
        if not e.after_stop or self.speech_end is None:  # a late score: the stop's estimate stands
            self.speech_end = e.at - e.pause_ms / 1000
        if e.finalize_id in (self._answered[0], *self._answered[2]):  # answered before the score came (a late
            self.finalized(*self._answered)                          # score, or a FINALIZE sent at the pause)

    def finalized(self, finalize_id: str, turn_text: str, covers: tuple[str, ...] = ()) -> None:
        """The pause's FINALIZE was answered (itself, or coalesced into `finalize_id` while STT
        was behind: finalizes.MAX_FINALIZES): decide on the whole turn's words so far."""
        self._answered = (finalize_id, turn_text, covers)
        p = self.pause
        if not self.on or p is None or (p.finalize_id != finalize_id and p.finalize_id not in covers) or self.committed:
            return
        v = self.verdict = decide(p.probability, turn_text, self.cfg, self.language,
                                  self.learning.wait_ms if self.learning.on else 0)
        if v.decision is Decision.COMMIT:
            self.learning.judged_complete(self.speech_end)
        log.info("end of turn verdict", extra={"decision": v.decision.value, "reason": v.reason, "wait_ms": v.wait_ms,
                                               "probability": round(p.probability, 3), "words": len(words_of(turn_text))})
        assert self.speech_end is not None
        left = v.wait_ms / 1000 - (self.clock.monotonic() - self.speech_end)
        if v.decision is Decision.COMMIT and left <= 0:
            self._commit(v.reason)
            return
        what = f"after {v.wait_ms} ms: " if v.decision is Decision.COMMIT else f"fallback after {v.wait_ms} ms: "
        self._timer = self.clock.call_later(max(0.0, left), lambda: self._commit(what + v.reason))

    def speech_stopped(self, at: float, min_silence_ms: int) -> None:
        """The VAD's min silence passed. Commits unless a scored pause is still being decided or
        waits out its fallback (a HOLD may wait longer than the VAD's silence)."""
        if self.committed:
            return
        if self.on and self.pause is not None:
            return  # the verdict (or its fallback timer) decides
        self.speech_end = at - min_silence_ms / 1000
        if not self.on or self._last_pause_scored:  # silence only, or this pause's verdict was acted on
            self._commit("silence only" if not self.on else "silence")
            return
        # Turn scoring is on, so the pause was scored, but the score has not come (a loaded VAD): wait
        # for it up to `unscored_wait_ms` from the end of speech (Listener passes a late score on).
        # Committing at the VAD's silence here is what cut into 1.5 s thinking pauses under load.
        left = self.cfg.unscored_wait_ms / 1000 - (self.clock.monotonic() - self.speech_end)
        if left <= 0:
            self._commit("silence")
            return
        self._cancel_timer()
        self._timer = self.clock.call_later(left, lambda: self._commit(
            f"silence: no turn score within {self.cfg.unscored_wait_ms} ms"))

    # ---- the commit ----

    def taken(self) -> None:
        """A reply was started for the committed words: the next turn starts afresh."""
        self._reset()

    def _commit(self, reason: str) -> None:
        self._cancel_timer()
        self.committed, self.committed_at, self.reason = True, self.clock.monotonic(), reason
        log.info("turn committed", extra={"reason": reason})
        self._on_commit()

    def _reset(self) -> None:
        self._cancel_timer()
        self.committed = False
        self.pause = self.verdict = None
        self.committed_at = None

    def _waiting_to_commit(self) -> bool:
        return self.verdict is not None and self.verdict.decision is Decision.COMMIT and not self.committed

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
