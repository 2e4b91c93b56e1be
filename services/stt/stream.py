"""One Recognize stream: audio and FINALIZE requests in, results out, provider fallback in between.

FINALIZE bookkeeping lives here, provider-independent: the utterance a FINALIZE closes is every
final result since the previous answer; each FINALIZE is answered exactly once, in order, by the
provider (from_finalize) or by the deadline (best interim text, by_deadline); a provider answer
that arrives after its deadline is dropped, since the caller already has that turn.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interview.v1 import common_pb2, stt_pb2
from services.common import telemetry
from services.common.audio import check_chunk
from services.common.clock import Clock, Timer
from services.common.confidence import word_weighted
from services.common.errors import ServiceError
from services.common.fallback import Failover, ProviderChain
from services.common.tasks import WorkQueue
from services.stt.providers.base import (Audio, FinalizeMark, ProviderEventT, ProviderFailure, ProviderNotice,
                                         ProviderResult, Session, SttProvider)

log = logging.getLogger("stt.stream")

_Event = common_pb2.ProviderEvent


@dataclass
class _Pending:
    finalize_id: str
    trace: common_pb2.TraceContext
    expects_provider: bool
    answered: bool = False
    timer: Timer | None = None
    span: Any = None  # 'stt.finalize' in the turn's trace: FINALIZE received -> answered

    def answer(self, msg: stt_pb2.RecognizeResponse, **attributes: Any) -> None:
        self.answered = True
        msg.result.trace.CopyFrom(self.trace)
        if self.span is not None:
            self.span.set_attributes({"words": len(msg.result.words), **attributes})
            self.span.end()
            self.span = None


@dataclass
class _Utterance:
    finals: list[ProviderResult] = field(default_factory=list)
    interim: ProviderResult | None = None


class RecognizeStream:
    def __init__(self, config: stt_pb2.SttConfig, provider: str, chain: ProviderChain[SttProvider],
                 *, fallback: bool, deadline_s: float, clock: Clock, out: WorkQueue[object]):
        self.config = config
        self.rate = config.sample_rate_hz
        self.provider = provider
        self.chain = chain
        self.deadline_s = deadline_s
        self.clock = clock
        self.out = out
        self.session: Session | None = None
        self._sessions: list[Session] = []
        self._lock = asyncio.Lock()  # orders audio/finalize against a provider switch
        self._pending: deque[_Pending] = deque()         # unanswered, in order
        self._awaiting: deque[_Pending] = deque()        # sent to the provider, provider not yet answered
        self._utt = _Utterance()
        self._audio_since_finalize = False
        self._end = 0                                    # caller offset after the last audio sample
        self._tasks: set[asyncio.Task[None]] = set()
        self.walk: Failover[SttProvider] = Failover(chain, provider, fallback=fallback)
        self._succeeded: set[str] = set()
        self._answered = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        events = self.walk.begin()
        assert self.walk.provider is not None  # the last provider is always offered
        await self._open(self.walk.name, self.walk.provider)
        for event in events:
            await self._put(stt_pb2.RecognizeResponse(provider_event=event))

    async def close(self) -> None:
        for p in self._pending:
            if p.timer:
                p.timer.cancel()
            if p.span is not None:  # the stream ended before this FINALIZE was answered
                p.span.set_attribute("cancelled", True)
                p.span.end()
                p.span = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self._sessions:
            await session.close()

    async def drained(self) -> None:
        """Wait until every FINALIZE received so far is answered (at the latest by its deadline)."""
        while self._pending:
            self._answered.clear()
            await self._answered.wait()

    async def _open(self, name: str, provider: SttProvider) -> None:
        self.provider = name
        self.session = provider.session(self.rate, self.emitter(name), self.config)
        self._sessions.append(self.session)
        await self.session.start()

    # -- requests -----------------------------------------------------------------------------

    async def audio(self, chunk: common_pb2.AudioChunk) -> None:
        samples = check_chunk(chunk.pcm, chunk.offset_samples, self._end)
        if not len(samples):
            return
        self._end = chunk.offset_samples + len(samples)
        self._audio_since_finalize = True
        async with self._lock:
            assert self.session is not None
            await self.session.send_audio(Audio(chunk.offset_samples, chunk.pcm))

    async def finalize(self, request: stt_pb2.Finalize) -> None:
        expects = self._audio_since_finalize
        self._audio_since_finalize = False
        pending = _Pending(request.finalize_id, request.trace, expects,
                           span=telemetry.start_child(request.trace, "stt.finalize", provider=self.provider,
                                                      finalize_id=request.finalize_id))
        self._pending.append(pending)
        if not expects:
            await self._answer_ready()  # nothing new to recognise: answer at once (in order)
            return
        pending.timer = self.clock.call_later(self.deadline_s, lambda: self._spawn(self._deadline(pending)))
        self._awaiting.append(pending)
        async with self._lock:
            assert self.session is not None
            await self.session.finalize()

    # -- provider events ----------------------------------------------------------------------

    def emitter(self, session_name: str) -> Callable[[ProviderEventT], object]:
        async def emit(event: ProviderEventT) -> None:
            if self.session is None or self.session.name != session_name:
                return  # a replaced session's late words
            if isinstance(event, ProviderResult):
                await self._result(event)
            elif isinstance(event, ProviderNotice):
                await self._event(event.kind, self.provider, "", event.reason)
            elif isinstance(event, ProviderFailure):
                await self._failover(event)

        return emit

    async def _result(self, r: ProviderResult) -> None:
        if self.provider not in self._succeeded:
            self._succeeded.add(self.provider)
            self.walk.succeed()
        if not r.is_final:
            self._utt.interim = r
            if self.config.interim_results:
                await self._put(self._msg(self._utt.finals + [r], False))
            return
        if r.from_finalize and self._awaiting:
            p = self._awaiting.popleft()
            if p.answered:
                log.info("provider answered a finalize after its deadline; dropped", extra={"finalize_id": p.finalize_id})
                return
            self._utt.finals.append(r)
            await self._answer(p, by_deadline=False, from_finalize=True)
            return
        if r.text:
            self._utt.finals.append(r)
            self._utt.interim = None
            await self._put(self._msg([r], True))

    async def _deadline(self, p: _Pending) -> None:
        if p.answered or not self._pending or self._pending[0] is not p:
            return
        if self._utt.interim is not None:
            self._utt.finals.append(self._utt.interim)
        log.warning("finalize answered by deadline", extra={"finalize_id": p.finalize_id, "provider": self.provider})
        await self._answer(p, by_deadline=True, from_finalize=False)

    async def _answer(self, p: _Pending, *, by_deadline: bool, from_finalize: bool) -> None:
        assert self._pending and self._pending[0] is p
        self._pending.popleft()
        if p.timer:
            p.timer.cancel()
        msg = self._msg(self._utt.finals, True)
        msg.result.finalize_id = p.finalize_id
        msg.result.by_deadline = by_deadline
        msg.result.from_finalize = from_finalize
        p.answer(msg, by_deadline=by_deadline, provider=self.provider)
        self._utt = _Utterance()
        await self._put(msg)
        self._answered.set()
        await self._answer_ready()

    async def _answer_ready(self) -> None:
        """Answer, in order, the FINALIZEs at the head that have nothing to wait for."""
        while self._pending and not self._pending[0].expects_provider:
            p = self._pending.popleft()
            msg = self._msg([], True)
            msg.result.start_offset_samples = msg.result.end_offset_samples = self._end
            msg.result.finalize_id = p.finalize_id
            p.answer(msg, nothing_new=True)
            await self._put(msg)
            self._answered.set()

    async def _failover(self, failure: ProviderFailure) -> None:
        events = self.walk.fail(failure.reason)
        if self.walk.provider is None:
            await self._put(ServiceError(failure.reason, code=failure.code))
            return
        async with self._lock:
            assert self.session is not None
            replay = self.session.unfinished()
            await self._open(self.walk.name, self.walk.provider)
            for event in events:
                await self._put(stt_pb2.RecognizeResponse(provider_event=event))
            for item in replay:
                if isinstance(item, Audio):
                    await self.session.send_audio(item)
                elif isinstance(item, FinalizeMark):
                    await self.session.finalize()

    # -- output -------------------------------------------------------------------------------

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, item: object) -> None:
        if not self.out.closed:  # closed: the caller has gone; late words go nowhere
            await self.out.put(item)

    async def _event(self, kind: int, provider: str, from_provider: str, reason: str) -> None:
        await self._put(stt_pb2.RecognizeResponse(provider_event=common_pb2.ProviderEvent(
            kind=kind, provider=provider, from_provider=from_provider, reason=reason)))

    def _msg(self, parts: list[ProviderResult], is_final: bool) -> stt_pb2.RecognizeResponse:
        texts = [p.text.strip() for p in parts if p.text.strip()]
        result = stt_pb2.SttResult(is_final=is_final, text=" ".join(texts), provider=self.provider)
        if parts:
            result.start_offset_samples = parts[0].start
            result.end_offset_samples = max(p.end for p in parts)
            result.confidence = word_weighted((p.confidence, len(p.words) or len(p.text.split())) for p in parts)
        else:
            result.start_offset_samples = result.end_offset_samples = self._end
        for p in parts:
            for w in p.words:
                result.words.add(text=w.text, confidence=w.confidence, start_offset_samples=w.start,
                                 end_offset_samples=w.end, filler=w.filler)
        return stt_pb2.RecognizeResponse(result=result)
