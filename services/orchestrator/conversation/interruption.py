"""What a barge-in does to the agent's turn; barge_in.BargeIn decides when.

Stage one pauses playback (PLAYBACK_PAUSE) and a false alarm resumes it; the commit sends CLEAR
first (stale audio never plays), then stops the turn's LLM and TTS calls and records only what
the candidate heard, marked interrupted.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from interview.v1 import session_pb2
from services.orchestrator.conversation.llm_request import ANSWERS
from services.orchestrator.conversation.transcript import AGENT
from services.orchestrator.conversation.turns import agent_entry_id

if TYPE_CHECKING:
    from services.orchestrator.conversation.floor import Floor


class Interruption:
    def __init__(self, floor: "Floor"):
        self.floor = floor
        self.resumed = False  # playback resumed after a false alarm, within the same VAD utterance

    def playback(self, action: int, gid: str) -> None:
        f = self.floor
        control = session_pb2.PlaybackControl(action=action, generation_id=gid)
        if f.turn is not None:
            control.trace.CopyFrom(f.turn.trace)
        f.outbound.control(session_pb2.ServerMessage(playback=control))

    def pause(self, gid: str) -> None:
        if self.floor.turn is not None:
            self.floor.turn.pause()
        self.playback(session_pb2.PLAYBACK_PAUSE, gid)

    def resume(self, gid: str) -> None:
        self.resumed = True
        if self.floor.turn is not None:
            self.floor.turn.resume()
        self.playback(session_pb2.PLAYBACK_RESUME, gid)

    def commit(self, gid: str) -> None:
        """CLEAR first (stale audio never plays), then stop the turn and keep what was heard."""
        f = self.floor
        turn = f.turn
        f.outbound.clear(gid)
        self.playback(session_pb2.PLAYBACK_CLEAR, gid)
        if turn is None or turn.generation_id != gid:
            return
        f.stop_turn(turn)
        heard = turn.heard_text()
        if heard:  # the candidate heard part of the reply: their earlier words were answered
            f.commit_user_turn(turn)
            f.transcript.record(AGENT, heard, interrupted=True, entry_id=agent_entry_id(turn))
        f.coach.done(turn)
        f.send_state()
        if turn.sent_any_audio and turn.task in ANSWERS:
            f.publish_metrics(turn, interrupted=True, once=False)
