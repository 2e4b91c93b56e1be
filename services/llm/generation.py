"""One Generate request through the provider chain: failover, first-token deadline, one answer.

Policy (the breakers themselves live in services/common/fallback.py):
- A provider that errors, or yields nothing within the first-token deadline, is abandoned: its
  generator is closed (closing its HTTP request) before anything else happens.
- A retryable error (5xx, dropped connection) that came back within the first half of the
  deadline is retried once on the same provider; a missed deadline or a 4xx (429 included) is not.
- Then the breaker records the failure (opening for its cool-down), a FALLBACK ProviderEvent is
  sent, and the next provider answers. The last provider in the chain has no first-token
  deadline: nothing is left to fall back to.
- Once a provider has produced its first event the request is committed to it: a later error ends
  the answer with FINISH_ERROR and the text so far, never a second answer from someone else.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from interview.v1 import common_pb2, llm_pb2
from services.common.fallback import BreakerState, ProviderChain
from services.llm.providers import Act, Delta, Done, Event, Provider, ProviderError, Settings

log = logging.getLogger("llm.generation")


class NoProviderAnswered(Exception):
    """Every provider in the chain failed (the servicer maps it to UNAVAILABLE)."""


@dataclass
class Defaults:
    model: str
    temperature: float
    max_output_tokens: int
    first_token_deadline_s: float
    request_timeout_s: float


@dataclass
class _Outcome:
    text: list[str] = field(default_factory=list)
    actions: list[llm_pb2.Action] = field(default_factory=list)
    done: Done | None = None
    ttft_ms: int = 0
    error: str = ""


def settings_for(req: llm_pb2.GenerateRequest, d: Defaults) -> Settings:
    o = req.options
    return Settings(model=o.model or d.model,
                    temperature=o.temperature if o.HasField("temperature") else d.temperature,
                    max_output_tokens=o.max_output_tokens or d.max_output_tokens,
                    timeout_s=(o.timeout_ms / 1000) if o.timeout_ms else d.request_timeout_s)


class Generation:
    def __init__(self, chain: ProviderChain[Provider], defaults: Defaults):
        self.chain = chain
        self.defaults = defaults

    async def run(self, req: llm_pb2.GenerateRequest) -> AsyncIterator[llm_pb2.GenerateResponse]:
        settings = settings_for(req, self.defaults)
        deadline = (req.options.first_token_deadline_ms / 1000) or self.defaults.first_token_deadline_s
        started = time.monotonic()
        attempts: list[llm_pb2.ProviderAttempt] = []
        forced = req.options.provider
        names = [forced] if forced else self.chain.names
        previous = ""
        for name, provider, breaker in self._candidates(forced, attempts):
            if previous:
                yield _event(common_pb2.ProviderEvent.FALLBACK, name, previous, attempts[-1].error)
            last = name == names[-1]
            for attempt in (1, 2):
                t0 = time.monotonic()
                stream = provider.generate(req, settings)
                try:
                    first = await self._first_event(stream, None if last else deadline, name)
                except ProviderError as exc:
                    await stream.aclose()
                    fast = time.monotonic() - t0 < deadline / 2
                    if attempt == 1 and exc.retryable and fast and not last:
                        log.info("provider failed, retrying once", extra={"provider": name, "error": str(exc)})
                        continue
                    breaker.record_failure(str(exc))
                    attempts.append(llm_pb2.ProviderAttempt(provider=name, error=str(exc),
                                                            breaker_state=breaker.state.value))
                    log.warning("provider failed", extra={"provider": name, "error": str(exc),
                                                          "breaker": breaker.state.value})
                    if breaker.state is BreakerState.OPEN:
                        yield _event(common_pb2.ProviderEvent.BREAKER_OPEN, "", name, str(exc))
                    previous = name
                    break
                except BaseException:  # cancelled before the first token: no verdict on the provider
                    breaker.release()
                    await stream.aclose()
                    raise
                breaker.record_success()
                attempts.append(llm_pb2.ProviderAttempt(provider=name, breaker_state=breaker.state.value))
                async for response in self._stream(name, stream, first, started, attempts):
                    yield response
                return
        raise NoProviderAnswered("; ".join(f"{a.provider}: {a.error}" for a in attempts) or "no provider configured")

    def _candidates(self, forced: str, attempts: list[llm_pb2.ProviderAttempt]):  # type: ignore[no-untyped-def]
        if forced:  # the caller asked for this provider only: no fallback, breaker not consulted
            yield forced, self.chain.get(forced), self.chain.breakers[forced]
            return
        offered = set()
        for name, provider, breaker in self.chain.candidates():
            for skipped in self.chain.names:
                if skipped == name:
                    break
                if skipped not in offered:
                    offered.add(skipped)
                    attempts.append(llm_pb2.ProviderAttempt(provider=skipped, error="skipped: breaker open",
                                                            breaker_state=self.chain.breakers[skipped].state.value))
            offered.add(name)
            yield name, provider, breaker

    @staticmethod
    async def _first_event(stream: AsyncIterator[Event], deadline: float | None, name: str) -> Event:
        try:
            async with asyncio.timeout(deadline):
                return await anext(stream)
        except TimeoutError:
            raise ProviderError(f"{name}: no first token within {int((deadline or 0) * 1000)} ms",
                                retryable=False) from None
        except StopAsyncIteration:
            raise ProviderError(f"{name}: ended without an answer", retryable=False) from None
        except ProviderError:
            raise
        except Exception as exc:  # a provider bug must not take the request down: fall back
            log.exception("provider raised unexpectedly", extra={"provider": name})
            raise ProviderError(f"{name}: {type(exc).__name__}: {exc}", retryable=False) from exc

    async def _stream(self, name: str, stream: AsyncIterator[Event], first: Event, started: float,
                      attempts: list[llm_pb2.ProviderAttempt]) -> AsyncIterator[llm_pb2.GenerateResponse]:
        out = _Outcome(ttft_ms=int((time.monotonic() - started) * 1000))
        try:
            event: Event | None = first
            while event is not None:
                if isinstance(event, Delta) and event.text:
                    out.text.append(event.text)
                    yield llm_pb2.GenerateResponse(delta=llm_pb2.TextDelta(text=event.text))
                elif isinstance(event, Act):
                    out.actions.append(llm_pb2.Action(type=event.type, target_phase_id=event.target_phase_id,
                                                      reason=event.reason))
                elif isinstance(event, Done):
                    out.done = event
                    break
                try:
                    event = await anext(stream)
                except StopAsyncIteration:
                    event = None
        except ProviderError as exc:
            # Committed to this provider: report the failure, never start a second answer.
            self.chain.breakers[name].record_failure(str(exc))
            out.error = str(exc)
            attempts[-1].error = str(exc)
            attempts[-1].breaker_state = self.chain.breakers[name].state.value
            log.warning("provider failed mid-answer", extra={"provider": name, "error": str(exc)})
        finally:
            await stream.aclose()
        yield llm_pb2.GenerateResponse(final=_final(name, out, attempts))


def _final(name: str, out: _Outcome, attempts: list[llm_pb2.ProviderAttempt]) -> llm_pb2.GenerateFinal:
    done = out.done or Done(llm_pb2.FINISH_ERROR)
    finish = llm_pb2.FINISH_ERROR if out.error else done.finish_reason
    if finish == llm_pb2.FINISH_STOP and not out.text and out.actions:
        finish = llm_pb2.FINISH_ACTION_ONLY
    return llm_pb2.GenerateFinal(
        text="".join(out.text), finish_reason=finish, provider=name, time_to_first_token_ms=out.ttft_ms,
        usage=llm_pb2.Usage(input_tokens=done.input_tokens, output_tokens=done.output_tokens,
                            total_tokens=done.input_tokens + done.output_tokens),
        actions=out.actions, attempts=attempts)


def _event(kind: int, provider: str, from_provider: str, reason: str) -> llm_pb2.GenerateResponse:
    return llm_pb2.GenerateResponse(provider_event=common_pb2.ProviderEvent(
        kind=kind, provider=provider, from_provider=from_provider, reason=reason))
