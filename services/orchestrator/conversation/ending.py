"""A session's end: nothing the candidate said or heard is lost, and the lease is always released.

The turn cut off by the disconnect becomes an incomplete entry; the LLM's end / advance calls
finish (bounded) instead of being cancelled, so a hangup right after the closing words does not
leave the interview ACTIVE; the session's tasks are cancelled and waited for (bounded: a task
that swallowed its cancellation must not hold the lease forever); the outbox drains, and what
Redis cannot take goes to the spill file, replayed when Redis returns.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from interview.v1 import session_pb2

if TYPE_CHECKING:
    from services.orchestrator.conversation.session import Session

log = logging.getLogger("conversation.ending")

DRAIN_AT_END_S, TASKS_STOP_S = 3.0, 5.0
# The LLM's end / advance calls, spawned by the floor under these names (actions.py).
API_CALLS, API_CALLS_AT_END_S = ("end", "advance-phase"), 5.0


async def shut_down(s: "Session") -> None:
    log.info("session ending", extra={"reason": s.end_reason})
    cut = s.transcript.in_flight(s.listener.in_progress(), s.floor.in_progress(), ended=True)
    s.transcript.clear_pending()
    s.floor.cut_off()
    await asyncio.gather(s.vision.close(), _finish_api_calls(s.tasks))  # video: its stats into the events
    await _stop([t for t in s.tasks if t not in s.transcript.writes])
    await s.history.close()
    await asyncio.gather(*s.transcript.writes, return_exceptions=True)
    for entry in cut:
        await s.outbox.put(entry)
    drained = True
    try:
        await asyncio.wait_for(s.outbox.drain(), DRAIN_AT_END_S)
    except asyncio.TimeoutError:
        drained = False
        log.error("transcript entries still pending at session end", extra={"pending": s.outbox.pending})
    unwritten = await s.outbox.close()
    if unwritten and s.spill is not None:
        await s.spill.append(unwritten)  # replayed into Redis when it returns; overflow logged
    elif unwritten:
        log.error("transcript entries LOST at session end (no spill file)", extra={"entries": len(unwritten)})
    if s.end_reason != "replaced":
        await s.ownership.leave(s.session_id, s.end_reason, drained=drained)
    if s.failure is None:
        s.outbound.control(session_pb2.ServerMessage(end=session_pb2.SessionEnd(reason=s.end_reason)))
    s.outbound.close()


async def _finish_api_calls(tasks: "set[asyncio.Task[Any]]") -> None:
    calls = [t for t in tasks if t.get_name().rpartition(":")[2] in API_CALLS]
    if not calls:
        return
    _, pending = await asyncio.wait(calls, timeout=API_CALLS_AT_END_S)
    if pending:
        log.error("the LLM's end / advance call did not finish at session end; cancelled",
                  extra={"calls": [t.get_name() for t in pending]})


async def _stop(tasks: "list[asyncio.Task[Any]]") -> None:
    for t in tasks:
        t.cancel()
    stuck = (await asyncio.wait(tasks, timeout=TASKS_STOP_S))[1] if tasks else set()
    if stuck:
        log.error("session tasks did not stop", extra={"tasks": ",".join(t.get_name() for t in stuck)})
