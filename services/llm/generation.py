"""One Generate request through the provider chain: failover, first-token deadline, one answer.

Policy (carried out by the failover driver in services/common/fallback.py):
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

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from interview.v1 import llm_pb2
from services.common.errors import NoProviderAnswered
from services.common.fallback import Answer, Failover, ProviderChain
from services.llm.providers.base import Act, Delta, Done, Event, LlmProvider as Provider, ProviderError, Settings

log = logging.getLogger("llm.generation")


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
        forced = req.options.provider
        # A provider the caller asked for is used alone: no fallback, breaker not consulted.
        walk: Failover[Provider] = Failover(self.chain, forced or None, pinned=bool(forced), announce_open=True)

        def start(name: str, provider: Provider) -> AsyncIterator[Event]:
            own = settings if req.options.model or not provider.model else replace(settings, model=provider.model)
            return provider.generate(req, own)

        answer: Answer[Event] | None = None
        async for step in walk.first_answer(start, deadline):
            if isinstance(step, Answer):
                answer = step  # the last step
            else:
                yield llm_pb2.GenerateResponse(provider_event=step)
        if answer is None:
            raise NoProviderAnswered(f"no language model provider could answer: {walk.summary()}")
        async for response in self._stream(walk, answer, started):
            yield response

    async def _stream(self, walk: Failover[Provider], answer: Answer[Event],
                      started: float) -> AsyncIterator[llm_pb2.GenerateResponse]:
        out = _Outcome(ttft_ms=int((time.monotonic() - started) * 1000))
        stream = answer.stream
        try:
            event: Event | None = answer.first
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
            walk.fail_committed(str(exc))
            out.error = str(exc)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        attempts = [llm_pb2.ProviderAttempt(provider=a.provider, error=a.error, breaker_state=a.breaker_state)
                    for a in walk.attempts]
        yield llm_pb2.GenerateResponse(final=_final(answer.provider, out, attempts))


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

