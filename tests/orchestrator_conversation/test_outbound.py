"""Outbound's control queue is bounded: superseded messages make room first, an essential one is
dropped only when nothing else can go (counted)."""
from __future__ import annotations

from interview.v1 import session_pb2
from services.orchestrator.conversation.outbound import Outbound


def caption(text: str, final: bool) -> session_pb2.ServerMessage:
    return session_pb2.ServerMessage(caption=session_pb2.Caption(text=text, is_final=final))


async def test_control_is_bounded_and_superseded_messages_go_first() -> None:
    out = Outbound(max_control=4)
    for m in (caption("a", True), caption("b", False), caption("c", True), caption("d", False)):
        out.control(m)
    out.control(session_pb2.ServerMessage(end=session_pb2.SessionEnd(reason="x")))  # full: "b" makes room
    out.control(caption("e", True))  # full: "d" makes room
    assert out.dropped_control == 0
    out.control(caption("f", True))  # all essential: the oldest goes, counted
    assert out.dropped_control == 1
    out.close()
    got = []
    while (m := await out.get()) is not None:
        got.append(m.caption.text or m.WhichOneof("msg"))
    assert got == ["c", "end", "e", "f"]
