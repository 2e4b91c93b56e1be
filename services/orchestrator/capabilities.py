"""What the STT and TTS services can do, learned from their Capabilities calls (never a copy of
their provider tables), and the check CreateInterview runs with it: an interview language no
available STT provider recognises, or a voice/language no available TTS provider speaks, is
refused with INVALID_ARGUMENT naming the field and listing what is supported, instead of a
session that ends at the first word or an interviewer who never speaks.

One background task per orchestrator asks both services at start-up and every `refresh_s`
(every `retry_s` while an answer is missing). When a service cannot be reached:
- its last known answer is used (capabilities change with a deployment, not by the minute);
- if it was never known (the orchestrator started while the service was down, or the service
  predates Capabilities: UNIMPLEMENTED), the value is accepted with a warning, and a session with
  a value the service refuses still fails cleanly at run time (the STT/TTS stream's own check).
Languages compare as services.common.languages does ("en-us" == "en-US"; "en" matches "en-US").
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc

from interview.v1 import common_pb2, interviews_pb2
from services.common import languages
from services.common.errors import invalid
from services.common.tasks import OwnedTask, raise_if_cancelling

log = logging.getLogger("orchestrator.capabilities")

Fetch = Callable[[], Awaitable[common_pb2.CapabilitiesResponse]]


@dataclass
class Known:
    answer: common_pb2.CapabilitiesResponse | None = None
    at: float = 0.0          # monotonic time of the answer
    reachable: bool = True   # the last call's outcome (a warning on each change, not each retry)


def usable(answer: common_pb2.CapabilitiesResponse, pinned: str) -> list[common_pb2.ProviderCapabilities]:
    """Available providers a session can use: the one ORCHESTRATOR_*_PROVIDER pins, else all."""
    return [p for p in answer.providers if p.available and (not pinned or p.provider == pinned)]


def _langs(providers: Sequence[common_pb2.ProviderCapabilities]) -> str:
    return "; ".join(f"{p.provider}: {languages.listing(p.languages) if p.languages else 'any'}" for p in providers)


def _voices(providers: Sequence[common_pb2.ProviderCapabilities]) -> str:
    return "; ".join(f"{p.provider}: {languages.listing(p.voices) if p.voices else 'any voice id'}" for p in providers)


def check_stt(language: str, stt: Sequence[common_pb2.ProviderCapabilities], field: str) -> None:
    if language and stt and not any(languages.supported(p.languages, language) for p in stt):
        raise invalid(f"{field}.language", f"{language!r} is not recognised by the speech-to-text service; "
                                           f"supported: {_langs(stt)}")


def check_tts(voice: str, language: str, tts: Sequence[common_pb2.ProviderCapabilities], field: str) -> None:
    """Some provider must take the voice and speak the language (the TTS stream starts on it)."""
    def has_voice(p: common_pb2.ProviderCapabilities) -> bool:
        return not voice or not p.voices or voice in p.voices

    def speaks(p: common_pb2.ProviderCapabilities) -> bool:
        return not language or languages.supported(p.languages, language)

    if not tts or any(has_voice(p) and speaks(p) for p in tts):
        return
    if not any(has_voice(p) for p in tts):
        raise invalid(f"{field}.tts_voice", f"unknown voice {voice!r}; the voices are {_voices(tts)}")
    if not any(speaks(p) for p in tts):
        raise invalid(f"{field}.language", f"{language!r} is not spoken by the text-to-speech service; "
                                           f"supported: {_langs(tts)}")
    raise invalid(f"{field}.tts_voice", f"voice {voice!r} does not speak {language!r}; "
                                        f"voices: {_voices(tts)}; languages: {_langs(tts)}")


class Capabilities:
    """The cached answers of Stt.Capabilities and Tts.Capabilities, and the config check."""

    def __init__(self, stt: Fetch, tts: Fetch, *, stt_provider: str = "", tts_provider: str = "",
                 refresh_s: float = 60.0, retry_s: float = 5.0, first_wait_s: float = 2.0):
        self._fetch = {"stt": stt, "tts": tts}
        self.pinned = {"stt": stt_provider, "tts": tts_provider}
        self.known = {name: Known() for name in self._fetch}
        self.refresh_s, self.retry_s, self.first_wait_s = refresh_s, retry_s, first_wait_s
        self._asked = asyncio.Event()  # set once the first round of calls has answered or failed
        self._task = OwnedTask(self._run, "capabilities")

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            raise_if_cancelling()
            await asyncio.gather(*(self._ask(name) for name in self._fetch))
            self._asked.set()
            missing = any(k.answer is None for k in self.known.values())
            await asyncio.sleep(self.retry_s if missing else self.refresh_s)

    async def _ask(self, name: str) -> None:
        known = self.known[name]
        try:
            answer = await self._fetch[name]()
        except Exception as exc:  # noqa: BLE001 - unreachable, UNIMPLEMENTED (an older service), a bad answer
            if known.reachable:
                why = f"{exc.code().name}: {(exc.details() or '')[:120]}" if isinstance(exc, grpc.aio.AioRpcError) \
                    else repr(exc)
                age = f"using its answer from {time.monotonic() - known.at:.0f} s ago" if known.answer else \
                    "never known: interview languages and voices are accepted unchecked until it answers"
                log.warning("%s capabilities unavailable (%s); %s", name, why, age, extra={"target": name})
            known.reachable = False
            return
        if not known.reachable or known.answer != answer:
            log.info("%s capabilities", name, extra={"target": name, "providers": ", ".join(
                f"{p.provider}{'' if p.available else ' (unavailable)'}" for p in answer.providers)})
        known.answer, known.at, known.reachable = answer, time.monotonic(), True

    async def check(self, config: interviews_pb2.InterviewConfig, field: str = "config") -> None:
        """INVALID_ARGUMENT if the config's language or voice cannot work at run time."""
        if not config.language and not config.tts_voice:
            return
        if not self._asked.is_set():  # just started: wait (bounded) for the first answers
            try:
                await asyncio.wait_for(self._asked.wait(), self.first_wait_s)
            except asyncio.TimeoutError:
                pass
        stt, tts = self.known["stt"].answer, self.known["tts"].answer
        if stt is None or tts is None:
            log.warning("interview config not checked against %s: its capabilities were never known",
                        " and ".join(n for n in ("stt", "tts") if self.known[n].answer is None),
                        extra={"language": config.language, "tts_voice": config.tts_voice})
        if stt is not None:
            check_stt(config.language, usable(stt, self.pinned["stt"]), field)
        if tts is not None:
            check_tts(config.tts_voice, config.language, usable(tts, self.pinned["tts"]), field)


def grpc_fetch(stub: object, timeout_s: float) -> Fetch:
    """A Fetch over an Stt or Tts stub (both have the same Capabilities method)."""
    async def fetch() -> common_pb2.CapabilitiesResponse:
        return await stub.Capabilities(common_pb2.CapabilitiesRequest(), timeout=timeout_s)  # type: ignore[attr-defined]
    return fetch
