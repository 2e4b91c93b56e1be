"""The LLM history of a session, bounded for a 60-minute interview.

When it grows past `max_messages` or `max_chars`, the older part is summarised by the LLM service
(TASK_SUMMARIZE) into `summary`, which travels in the interview context; if summarising fails or
times out, the older part is dropped (truncation) and the summary keeps what it had. Either way no
request reaches the LLM's size limit. A session that picks up an interview (a rejoin) `restore`s
the earlier messages: the newest that fit are kept, the older ones go the same way (`absorb`).

The summariser (an LLM call, llm_request.py) is handed to the History, which starts its own
compaction when `add` takes it over a limit; record-keeping only adds messages. The owner stops
a compaction in progress with `close`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from interview.v1 import llm_pb2
from services.common.tasks import OwnedTask

log = logging.getLogger("conversation.history")

Summarize = Callable[[list[llm_pb2.ChatMessage], str], Awaitable[str]]  # (messages, previous summary) -> summary


class History:
    def __init__(self, max_messages: int = 40, max_chars: int = 24_000, summarize: Summarize | None = None):
        self.summarize = summarize
        self._compaction = OwnedTask(self.compact, "history-compact")
        self.messages: list[llm_pb2.ChatMessage] = []
        self.summary = ""
        self.max_messages = max_messages
        self.max_chars = max_chars
        self.compactions = 0
        self.truncations = 0
        self._lock = asyncio.Lock()

    def add(self, message: llm_pb2.ChatMessage) -> None:
        self.messages.append(message)
        if self.summarize is not None and self.over_limit():
            self._compaction.start()  # no-op while one runs

    async def close(self) -> None:
        await self._compaction.stop()

    @property
    def chars(self) -> int:
        return sum(len(m.text) for m in self.messages)

    def over_limit(self) -> bool:
        return len(self.messages) > self.max_messages or self.chars > self.max_chars

    def restore(self, messages: list[llm_pb2.ChatMessage]) -> list[llm_pb2.ChatMessage]:
        """A new history that starts from an earlier session's messages (oldest first): keeps the
        newest that fit the limits (at least the last one) and returns the older ones, for `absorb`."""
        keep, chars = 0, 0
        for m in reversed(messages):
            if keep and (keep + 1 > self.max_messages or chars + len(m.text) > self.max_chars):
                break
            keep, chars = keep + 1, chars + len(m.text)
        split = len(messages) - keep
        self.messages = list(messages[split:])
        return list(messages[:split])

    async def absorb(self, older: list[llm_pb2.ChatMessage], summarize: Summarize | None = None,
                     timeout_s: float = 5.0) -> None:
        """Fold messages older than everything kept (what `restore` could not keep) into the summary."""
        if older:
            async with self._lock:
                await self._fold(older, summarize or self._summarizer(), timeout_s)

    async def compact(self, summarize: Summarize | None = None, timeout_s: float = 5.0) -> None:
        """Summarise the older half (keeps the newest half verbatim)."""
        summarize = summarize or self._summarizer()
        async with self._lock:
            if not self.over_limit():
                return
            keep = max(2, self.max_messages // 2)
            while keep > 2 and sum(len(m.text) for m in self.messages[-keep:]) > self.max_chars // 2:
                keep -= 1
            old, n_old = self.messages[:-keep], len(self.messages) - keep
            if not old:
                return
            await self._fold(old, summarize, timeout_s)
            del self.messages[:n_old]

    def _summarizer(self) -> Summarize:
        if self.summarize is None:
            raise RuntimeError("History has no summariser: pass summarize=")
        return self.summarize

    async def _fold(self, old: list[llm_pb2.ChatMessage], summarize: Summarize, timeout_s: float) -> None:
        """The summary of (the previous summary + `old`); on failure it keeps what it had (truncation)."""
        try:
            summary = await asyncio.wait_for(summarize(list(old), self.summary), timeout_s)
            self.summary = summary.strip()[: self.max_chars // 4]
            self.compactions += 1
        except (Exception, asyncio.TimeoutError) as exc:  # the fallback: truncate
            log.warning("summarising history failed; truncating", extra={"error": str(exc)[:200]})
            self.truncations += 1
