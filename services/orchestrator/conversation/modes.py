"""What a mode means for the loop: VAD params for the live stream and the LLM's system note.

Every mode change, whatever its source (UpdateConfig, a Redis command, a RUN/SUBMIT code event,
a phase change by the API or by the LLM), reaches the session as a `mode_changed` entry on the
interview's control stream and is applied by one method (`Session.apply_mode`), which uses these.
"""
from __future__ import annotations

from interview.v1 import common_pb2, interviews_pb2
from services.orchestrator.api.validation import TURN_TAKING_DEFAULTS

CODING = common_pb2.MODE_CODING

NOTES = {
    common_pb2.MODE_CODING: "Mode: CODING. The candidate is working on the problem. Answer only when addressed "
                            "(a question, a request for help, 'I'm done'); reply NO_REPLY to thinking aloud.",
    common_pb2.MODE_CONVERSATIONAL: "Mode: CONVERSATIONAL. Reply to every turn of the candidate.",
}


def vad_params(mode: int, config: interviews_pb2.InterviewConfig, conversational_silence_ms: int,
               coding_silence_ms: int) -> common_pb2.VadParams:
    """The session's params for `mode`: its min silence, then the interview's overrides for it."""
    params = common_pb2.VadParams(min_silence_ms=coding_silence_ms if mode == CODING else conversational_silence_ms)
    params.MergeFrom(config.coding_vad if mode == CODING else config.conversational_vad)
    turns = turn_taking_on(mode, config)
    params.turn_scoring = turns  # always said, so a mode change turns it off on the live stream
    if turns:
        params.turn_pause_ms = turn_taking(config).turn_pause_ms
    return params


def turn_taking(config: interviews_pb2.InterviewConfig) -> interviews_pb2.TurnTakingConfig:
    """The interview's turn-taking config with the defaults filled in for unset fields."""
    t = interviews_pb2.TurnTakingConfig()
    t.CopyFrom(TURN_TAKING_DEFAULTS)
    t.MergeFrom(config.turn_taking)
    return t


def turn_taking_on(mode: int, config: interviews_pb2.InterviewConfig) -> bool:
    """Semantic end of turn in CONVERSATIONAL mode (unless the interview turned it off). CODING
    keeps its long silence: the candidate thinks aloud there, and the interviewer answers only when
    addressed (the LLM's NO_REPLY decides that, after the silence)."""
    return mode != CODING and turn_taking(config).enabled


def check_in_timeout_s(config: interviews_pb2.InterviewConfig, default_s: float) -> float:
    return float(config.silence_timeout_s) if config.silence_timeout_s > 0 else default_s
