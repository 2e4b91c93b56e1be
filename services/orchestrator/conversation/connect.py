"""Session.Connect: join (join token or session credential), one live session per interview,
then the conversation loop (session.py) until the stream ends.

Join checks, in order: first message is a Join (INVALID_ARGUMENT), credential valid
(UNAUTHENTICATED) and for this interview (PERMISSION_DENIED), interview exists (NOT_FOUND) and
has not ended (FAILED_PRECONDITION), credential not revoked by ReissueJoinLink (UNAUTHENTICATED), the
join link not in use by a live session joined with it (FAILED_PRECONDITION: the live session's
reconnects use its session credential), audio format usable (INVALID_ARGUMENT). Then this instance
takes the owner lease by force: a newer stream replaces an older one, here (SessionEnd{replaced};
the old session first writes what it has under its own lease, up to REPLACE_GRACE_S, so the cut-off
turn is stored as it was heard, not as the in-flight marker last saw it) or on another instance
(its lease renewal or next fenced write fails). A join of an
interview joined before closes the turns its last owner left in flight, then picks the
conversation up (resume.py) instead of greeting again.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from interview.v1 import interviews_pb2, session_pb2
from services.common.clock import Clock, RealClock
from services.orchestrator.api.tokens import JoinTokens, TokenError
from services.orchestrator.conversation import resume
from services.orchestrator.conversation.session import Session, new_session_id
from services.orchestrator.conversation.settings import LoopSettings, Stubs
from services.orchestrator.store.spill import SpillFile
from services.orchestrator.store.store import LINK_IN_USE, Change, InterviewStore, NotFound, StoreError, timestamp

log = logging.getLogger("conversation.connect")
REPLACE_GRACE_S = 2.0  # how long a replaced session on this instance may take to write its last entries

INPUT_RATES = (16000, 8000)
PLAYBACK_RATES = (8000, 16000, 22050, 24000, 44100, 48000)


class SessionServicer:
    def __init__(self, store: InterviewStore, api: Any, join_tokens: JoinTokens, stubs: Stubs,
                 settings: LoopSettings, owner: str, credential_ttl_s: int = 4 * 3600, clock: Clock | None = None,
                 spill: SpillFile | None = None):
        self.spill = spill
        self.store = store
        self.api = api
        self.join_tokens = join_tokens
        self.credentials = join_tokens.derive("session-credential")
        self.stubs = stubs
        self.settings = settings
        self.owner = owner
        self.credential_ttl_s = credential_ttl_s
        self.clock = clock or RealClock()
        self.live: dict[str, Session] = {}  # interview id -> its live session on this instance

    async def Connect(self, request_iterator: AsyncIterator[session_pb2.ClientMessage],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[session_pb2.ServerMessage]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty stream: send a Join first")
        if first.WhichOneof("msg") != "join":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"the first message must be a Join, got {first.WhichOneof('msg') or 'an empty message'}")
        session, credential = await self._join(first.join, context)
        yield session_pb2.ServerMessage(credential=credential)
        yield session_pb2.ServerMessage(video_policy=session.interview.video_policy)
        runner = asyncio.create_task(session.run(request_iterator), name=f"session-{session.session_id}")
        try:
            while (msg := await session.outbound.get()) is not None:
                yield msg
        finally:
            session.stop("disconnected")
            await asyncio.gather(runner, return_exceptions=True)
            if self.live.get(session.iid) is session:
                del self.live[session.iid]
        if session.failure is not None:
            await context.abort(session.failure.code, str(session.failure))

    async def _join(self, join: session_pb2.Join, context: grpc.aio.ServicerContext
                    ) -> tuple[Session, session_pb2.SessionCredential]:
        iid = join.interview_id
        if not iid:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "join.interview_id is required")
        kind = join.WhichOneof("credential")
        signer = {"join_token": self.join_tokens, "session_credential": self.credentials}.get(kind or "")
        if signer is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "join needs a join_token (from the candidate's link) or a session_credential")
        try:
            claims = signer.verify(getattr(join, kind), iid, self.clock.time())  # type: ignore[arg-type]
        except TokenError as exc:  # UNAUTHENTICATED, or PERMISSION_DENIED for another interview's token
            await context.abort(exc.code, exc.message.replace("join token", kind.replace("_", " ")))  # type: ignore[union-attr]
        rate = join.audio_format.sample_rate_hz or 16000
        if rate not in INPUT_RATES or join.audio_format.channels not in (0, 1):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"join.audio_format: {rate} Hz x {join.audio_format.channels or 1} channels is not "
                                "accepted; send PCM s16le mono at 16000 (or 8000) Hz")
        playback = join.playback_sample_rate_hz or 24000
        if playback not in PLAYBACK_RATES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"join.playback_sample_rate_hz: {playback} is not "
                                f"one of {', '.join(map(str, PLAYBACK_RATES))}")
        try:
            snap = await self.store.get(iid)
            if snap.interview.status == session_pb2.INTERVIEW_ENDED:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                    f"interview {iid} has ended ({snap.interview.end_reason or 'no reason given'})")
            if claims.gen != snap.link_gen:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"this {kind.replace('_', ' ')} was revoked: "  # type: ignore[union-attr]
                                    "a new join link was issued for this interview; use the new link")
            link = claims.nonce if kind == "join_token" else ""  # a credential reconnect keeps its session's link
            if link and await self.store.link_in_use(iid, link):
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, LINK_IN_USE)
            rejoin = snap.interview.status != session_pb2.INTERVIEW_CREATED  # earlier sessions may have talked
            old = self.live.get(iid)
            if old is not None:  # on this instance: it writes what it has under its own lease first
                await old.stop_and_wait("replaced", REPLACE_GRACE_S)
            cursor = await self.store.last_event_id(self.store.keys.control(iid))
            epoch = await self.store.acquire_lease(iid, self.owner, self.settings.lease_ttl_ms, force=True, link=link)
            closed = await self.store.close_inflight(iid, epoch)  # a turn the last owner's crash cut off
            if closed:
                log.warning("closed turns left in flight by the previous owner",
                            extra={"interview_id": iid, "entries": [e.entry_id for e in closed]})
            session_id = new_session_id()
            joined = self.store.update(iid, self._joined(session_id), epoch=epoch)
            earlier = None
            if rejoin:  # read alongside the update: a rejoin costs no extra round trip
                (interview, _), earlier = await asyncio.gather(joined, resume.load(self.store, iid))
            else:
                interview, _ = await joined
        except NotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"interview {iid[:60]} not found")
        except StoreError as exc:  # ended meanwhile, or a newer owner fenced this join
            await exc.abort(context)
        token, expires = self.credentials.issue(iid, self.clock.time(), self.credential_ttl_s, gen=snap.link_gen)
        session = Session(interview=interview, session_id=session_id, owner=self.owner, epoch=epoch,
                          control_cursor=cursor, store=self.store, api=self.api, stubs=self.stubs,
                          settings=self.settings, clock=self.clock, input_rate=rate, playback_rate=playback,
                          earlier=earlier, spill=self.spill)
        session.vision.set_consent(join.consent)  # the candidate's video choice, made before joining
        self.live[iid] = session
        log.info("session joined", extra={"interview_id": iid, "session_id": session_id, "epoch": epoch,
                                          "client": join.client_info[:200], "by": kind})
        return session, session_pb2.SessionCredential(session_id=session_id, credential=token,
                                                      expires_at=timestamp(expires))

    def _joined(self, session_id: str) -> Any:
        def mutate(iv: interviews_pb2.Interview) -> Change:
            if iv.status == session_pb2.INTERVIEW_ENDED:
                raise StoreError(f"interview {iv.id} has ended ({iv.end_reason or 'no reason given'})")
            change = Change()
            if iv.status == session_pb2.INTERVIEW_CREATED:
                iv.status = session_pb2.INTERVIEW_ACTIVE
                iv.started_at.CopyFrom(timestamp(self.store.now()))
                change.events.append((self.store.event(iv.id, lifecycle=interviews_pb2.Lifecycle(
                    kind=interviews_pb2.Lifecycle.STARTED, session_id=session_id)), "l"))
            change.events.append((self.store.event(iv.id, lifecycle=interviews_pb2.Lifecycle(
                kind=interviews_pb2.Lifecycle.SESSION_JOINED, session_id=session_id)), ""))
            return change
        return mutate
