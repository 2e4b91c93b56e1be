"""End-of-turn policy: at a short pause, COMMIT (answer now), HOLD or UNDECIDED (keep listening).

Pure and dependency-free: the listener calls `decide` at each scored pause with three signals and
arms the fallback wait it returns; nothing here touches clocks, streams or services.

(a) the end-of-turn model's probability (the VAD's TurnScore; None when turn scoring is off);
(b) the transcript so far: an answer that ends in a continuation ("and", "so", "because", a filler
    like "um", a dangling preposition or article) is not finished, whatever the audio says;
(c) context: a candidate who just asked a question is done (offline transcripts carry no
    punctuation, so a question is recognised by its first words: a wh-word, or an auxiliary verb
    before the subject, "can you", "is it", "do we"...; only in a turn of at most
    `max_question_words`, since a long answer may well start with "how" or "what").

The transcript rules are ENGLISH ONLY (word lists below); for other languages pass `language`
other than "en" and only the model's probability (with its fallbacks) decides.

Outcome and the wait before acting anyway (the caller keeps listening meanwhile; new speech
cancels the wait):
- COMMIT: wait 0.
- HOLD (a continuation word, or the model fairly sure the turn goes on): `hold_max_wait_ms` (3000).
- UNDECIDED (neutral signals): `undecided_max_wait_ms` (1200), i.e. today's VAD-only silence; when
  the model leans incomplete (below 0.5) `lean_incomplete_wait_ms` (2000), so that a 1.5 s thinking
  pause the transcript does not mark (offline STT often misses "and", "um") is still held.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Decision(enum.Enum):
    COMMIT = "commit"
    HOLD = "hold"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class TurnPolicyConfig:
    """Thresholds with defaults; per interview (UpdateConfig) once wired."""

    commit_probability: float = 0.8      # model alone at or above this (no transcript veto) -> COMMIT
    question_probability: float = 0.3    # a question commits unless the model is below this
    hold_probability: float = 0.15       # model below this -> HOLD
    complete_text_probability: float = 0.5  # a finished-looking sentence commits from this probability
    min_words_for_text: int = 3          # shorter answers ("yes", "sure") rely on the model alone
    max_question_words: int = 20         # longer turns that merely START like a question are answers
    undecided_max_wait_ms: int = 1200    # neutral: commit after this much silence anyway
    hold_max_wait_ms: int = 3000         # "incomplete": commit after this much silence anyway
    lean_incomplete_wait_ms: int = 2000  # neutral signals but the model below 0.5 (leaning "goes on"): this
                                         # wait instead of undecided_max_wait_ms (a 1.5 s thinking pause holds)
    unscored_wait_ms: int = 2000         # the VAD's silence ended but the pause's score has not come: wait
                                         # for it up to this (from the end of speech), then commit
    long_answer_words: int = 25          # a COMMIT on an answer of at least this many words (not a question)
    long_answer_commit_ms: int = 1200    # ... waits this much silence: a monologue's sentence end (0 = off)
    learn_margin_ms: int = 250           # learned pauses (end_of_turn.PauseLearning): the pause the candidate went
    learn_max_ms: int = 2000             # on after + this; a longer gap is a new turn, not a pause, and
    learn_decay: float = 0.85            # each answer with no false end scales the learned wait by this

    def __post_init__(self) -> None:
        for name in ("commit_probability", "question_probability", "hold_probability", "complete_text_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} is out of range: accepted 0..1")
        if self.hold_probability > self.commit_probability:
            raise ValueError(f"hold_probability={self.hold_probability} is above "
                             f"commit_probability={self.commit_probability}")
        if not (0 <= self.learn_margin_ms <= 10_000 and 0 <= self.learn_max_ms <= 60_000 and 0 <= self.learn_decay <= 1):
            raise ValueError(f"learn_margin_ms={self.learn_margin_ms} / learn_max_ms={self.learn_max_ms} / "
                             f"learn_decay={self.learn_decay} out of range: accepted 0..10000, 0..60000, 0..1")
        if not 0 <= self.lean_incomplete_wait_ms <= 60_000:
            raise ValueError(f"lean_incomplete_wait_ms={self.lean_incomplete_wait_ms} is out of range: accepted 0..60000")
        if not 0 <= self.unscored_wait_ms <= 60_000:
            raise ValueError(f"unscored_wait_ms={self.unscored_wait_ms} is out of range: accepted 0..60000")
        if not 0 <= self.long_answer_commit_ms <= 60_000 or self.long_answer_words < 0:
            raise ValueError(f"long_answer_words={self.long_answer_words} / long_answer_commit_ms="
                             f"{self.long_answer_commit_ms} out of range: accepted >= 0 and 0..60000")
        if not 0 <= self.undecided_max_wait_ms <= self.hold_max_wait_ms <= 60_000:
            raise ValueError("need 0 <= undecided_max_wait_ms <= hold_max_wait_ms <= 60000, got "
                             f"{self.undecided_max_wait_ms} and {self.hold_max_wait_ms}")


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    wait_ms: int        # silence after the end of speech before committing (COMMIT: 0 = now)
    reason: str         # for logs and metrics: which signal decided


# --- English transcript rules -------------------------------------------------------------------

# An answer ending in one of these goes on: conjunctions and connectives that need a clause after
# them. Words that often END a sentence too ("that", "then", "though", "well", "also") are left out.
CONTINUATIONS = frozenset("""
and or but so because cause cuz although unless until while whereas if than like whether nor
""".split())
# Fillers and hesitations (pocketsphinx and Deepgram spellings). Assent ("mhm", "mm") is an answer.
FILLERS = frozenset("um umm uh uhh er erm ah hmm".split())
# Articles and possessive determiners (never the last word of a finished English sentence; "his",
# "her", "this", "that", "no" can be, so they are not listed).
DETERMINERS = frozenset("a an the my your our their its every each".split())
# Prepositions that take an object. Particles that end phrasal verbs ("logged in", "come on",
# "it's over") are not listed; a question may end in a preposition ("what is it made of").
PREPOSITIONS = frozenset("""
of to at by for with from into onto about as under between during without within against among
toward towards upon via per across behind beyond
""".split())
# Words that need a complement: "I'm", "we were being", "going to", "let's". Bare auxiliaries end
# short answers ("yes I did", "we can"), so they are not listed.
AUXILIARIES = frozenset("be been being i'm we're you're they're it's there's i've we've i'd we'd let's "
                        "gonna wanna gotta".split())
# Multi-word endings that mean "more is coming", and endings on a listed word that are complete.
CONTINUATION_PHRASES = ("you know", "i mean", "kind of", "sort of", "such as", "for example", "in order",
                        "i think", "the thing is", "so that", "and then", "as well as")
COMPLETE_PHRASES = ("think so", "hope so", "believe so", "guess so", "and so on", "and so forth", "or so",
                    "even so", "just like", "feel like", "looks like", "look like", "i'd like", "would like")
# A question starts with a wh-word, or an auxiliary before its subject ("can you", "is it").
WH_WORDS = frozenset("what when where which who whom whose why how".split())
QUESTION_AUX = frozenset("""
is are was were am do does did can could will would should shall may might must have has had
isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't wouldn't shouldn't
""".split())
SUBJECTS = frozenset("i you we they he she it there this that these those the my your our anyone someone".split())
_WORD = re.compile(r"[a-z']+")


def words_of(text: str) -> list[str]:
    """Lower-case words (STT filler markers like "[um]" or "<uh>" keep their word)."""
    return _WORD.findall(text.lower())


def _ends_with(words: list[str], phrases: tuple[str, ...]) -> bool:
    tail = " ".join(words[-4:])
    return any(tail == p or tail.endswith(" " + p) for p in phrases)


def continuation(text: str) -> str | None:
    """What makes the answer so far unfinished ("conjunction", "filler", "article", "preposition",
    "complement", "phrase"), or None."""
    words = words_of(text)
    if not words or _ends_with(words, COMPLETE_PHRASES):
        return None
    if _ends_with(words, CONTINUATION_PHRASES):
        return "phrase"
    last = words[-1]
    for kind, vocabulary in (("conjunction", CONTINUATIONS), ("filler", FILLERS), ("article", DETERMINERS),
                             ("preposition", PREPOSITIONS), ("complement", AUXILIARIES)):
        if last in vocabulary:
            return kind
    return None


def ends_in_continuation(text: str) -> bool:
    """True when the answer so far ends on a word or phrase that needs more after it."""
    return continuation(text) is not None


def is_question(text: str) -> bool:
    """The last sentence looks like a question: starts with a wh-word, or auxiliary + subject.

    Offline transcripts have no punctuation, so this looks at how the utterance starts (a "?" also
    counts when a provider punctuates). "Could you repeat that", "what do you mean", "is it ok if".
    """
    if text.rstrip().endswith("?"):
        return True
    words = words_of(text)
    while words and words[0] in FILLERS | {"so", "and", "but", "ok", "okay", "sorry", "yeah", "right"}:
        words = words[1:]  # "so um what is..." still starts a question
    if len(words) < 2:
        return False
    return words[0] in WH_WORDS or (words[0] in QUESTION_AUX and words[1] in SUBJECTS)


def looks_complete(text: str, min_words: int) -> bool:
    words = words_of(text)
    return len(words) >= min_words and not ends_in_continuation(text)


def decide(probability: float | None, transcript: str, cfg: TurnPolicyConfig | None = None,
           language: str = "en", min_wait_ms: int = 0) -> Verdict:
    """The verdict at a short pause. `probability`: the turn model's score (None if unavailable);
    `transcript`: the candidate's words of this turn so far (finalized at the pause); `min_wait_ms`:
    what this candidate's own pauses taught (PauseLearning): COMMIT and UNDECIDED wait at least
    this, a question too (offline, "how much there might..." or "had he married..." after a pause
    read as questions: a candidate known to pause is not cut off on that misreading)."""
    cfg = cfg or TurnPolicyConfig()
    v = _decide(probability, transcript, cfg, language)
    if min_wait_ms > v.wait_ms and v.decision is not Decision.HOLD:
        return Verdict(v.decision, min_wait_ms, f"{v.reason}; the candidate's pauses: {min_wait_ms} ms")
    return v


def _decide(probability: float | None, transcript: str, cfg: TurnPolicyConfig, language: str) -> Verdict:
    english = language.lower().startswith("en")
    unfinished = continuation(transcript) if english else None
    question = english and len(words_of(transcript)) <= cfg.max_question_words and is_question(transcript)
    if unfinished is not None and not (question and unfinished == "preposition"):
        return Verdict(Decision.HOLD, cfg.hold_max_wait_ms, f"transcript ends in a continuation ({unfinished})")
    if question and (probability is None or probability >= cfg.question_probability):
        return Verdict(Decision.COMMIT, 0, "the candidate asked a question")
    if probability is None:
        return Verdict(Decision.UNDECIDED, cfg.undecided_max_wait_ms, "no turn score")
    if probability >= cfg.commit_probability:
        return _commit(transcript, cfg, "turn model: complete")
    if probability < cfg.hold_probability:
        return Verdict(Decision.HOLD, cfg.hold_max_wait_ms, "turn model: incomplete")
    if english and probability >= cfg.complete_text_probability and looks_complete(transcript, cfg.min_words_for_text):
        return _commit(transcript, cfg, "turn model and transcript: complete")
    if probability < 0.5:
        return Verdict(Decision.UNDECIDED, max(cfg.undecided_max_wait_ms, cfg.lean_incomplete_wait_ms),
                       "signals neutral, the model leaning incomplete")
    return Verdict(Decision.UNDECIDED, cfg.undecided_max_wait_ms, "signals neutral")


def _commit(transcript: str, cfg: TurnPolicyConfig, reason: str) -> Verdict:
    """COMMIT now, or after `long_answer_commit_ms` for a long answer: a sentence end inside a
    monologue sounds and reads like a finished turn (the model scores both ~0.9), and only the
    answer's length tells them apart; a short answer to the interviewer's question is done sooner."""
    n = len(words_of(transcript))
    if cfg.long_answer_commit_ms and n >= cfg.long_answer_words:
        return Verdict(Decision.COMMIT, cfg.long_answer_commit_ms, f"{reason}; a long answer ({n} words)")
    return Verdict(Decision.COMMIT, 0, reason)
