"""The offline scripted interviewer as a provider: the turn from script.decide, streamed in small
deltas like a real model so the rest of the pipeline (TTS sentence splitting, barge-in) is
exercised the same way. No network, no model: it is the embedded default and the last fallback."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from interview.v1 import llm_pb2
from services.common.clock import Clock, RealClock
from services.llm import document_tasks, script
from services.llm.config import ScriptedSettings
from services.llm.prompting import PromptSet
from services.llm.providers.base import Delta, Done, Event, LlmProvider, Settings

_WORDS = re.compile(r"\S+\s*")


def estimate_tokens(chars: int) -> int:
    """~4 characters per token, the usual rule of thumb for English."""
    return (chars + 3) // 4


def pieces(text: str, words: int) -> list[str]:
    """Deltas of `words` words each, whitespace kept, so joining them gives `text` back."""
    tokens = _WORDS.findall(text)
    return ["".join(tokens[i:i + words]) for i in range(0, len(tokens), words)]


class ScriptedProvider(LlmProvider):
    name = "scripted"

    def __init__(self, settings: ScriptedSettings | None = None, *, prompts: PromptSet | None = None,
                 clock: Clock | None = None, timeout_s: float = 30.0):
        settings = settings or ScriptedSettings()
        self.delta_words = settings.delta_words
        self.delta_delay_s = settings.delta_delay_ms / 1000
        self.clock = clock or RealClock()

    async def generate(self, request: llm_pb2.GenerateRequest, settings: Settings) -> AsyncIterator[Event]:
        if document_tasks.is_document_task(request):  # no judgement offline: an honest decline
            turn = script.Turn(document_tasks.scripted_answer(request), [])
        else:
            turn = script.decide(request)
        text = turn.text
        out = pieces(text, self.delta_words)
        budget = settings.max_output_tokens * 4  # the same cap a model would honour, in characters
        finish = llm_pb2.FINISH_STOP
        sent = 0
        for i, piece in enumerate(out):
            if sent + len(piece) > budget:
                finish = llm_pb2.FINISH_MAX_TOKENS
                break
            if i:
                if self.delta_delay_s:
                    await self.clock.sleep(self.delta_delay_s)
                else:
                    await asyncio.sleep(0)  # let a cancellation (barge-in) in between deltas
            sent += len(piece)
            yield Delta(piece)
        for action in turn.actions:
            yield action
        if not out and turn.actions:
            finish = llm_pb2.FINISH_ACTION_ONLY
        prompt = sum(len(m.text) for m in request.history) + len(request.context.SerializeToString()) + len(request.document)
        yield Done(finish, input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(sent))
