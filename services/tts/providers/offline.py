"""Offline voices: flite (clear, the default) and espeak-ng (other languages, and the fallback
when flite fails), one subprocess per piece so synthesis never blocks the event loop.

flite's built-in voices are 16 kHz (kal: 8 kHz), espeak-ng's 22.05 kHz: output is resampled with
soxr to the rate the caller asked for.

flite starts every piece with ~170-250 ms of near-silence (-60..-90 dBFS) before the first sound:
that is cut to a 20 ms lead (TTS_OFFLINE_TRIM_LEADING_SILENCE), so the interviewer's first word
reaches the candidate that much sooner. The trailing silence stays: with the next piece's 20 ms
lead it makes a ~170 ms gap between sentences, still longer than flite's own between two
sentences of one text (60-80 ms). espeak-ng starts speaking within 10 ms: nothing to cut.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from interview.v1 import common_pb2
from services.common.audio import resample, trim_leading_silence
from services.common.languages import canonical, supported
from services.tts.config import OfflineSettings
from services.tts.providers.base import ProviderError, ProviderStream, TtsProvider, Utterance

log = logging.getLogger("tts.offline")

FLITE_VOICES = ("rms", "slt", "awb", "kal16", "kal")  # flite's built-in general voices (TTS_OFFLINE_VOICE choices)
ESPEAK = "espeak-ng"


class EngineError(ProviderError):
    """One engine (flite or espeak-ng) failed; the stream tries the next engine before giving up."""


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono 16-bit WAV bytes -> (samples, rate). Tolerates the 0x7fffffff sizes espeak-ng writes
    when its output is a pipe."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EngineError("not a WAV stream")
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
            if channels != 1 or bits != 16:
                raise EngineError(f"expected mono 16-bit audio, got {channels} channels of {bits} bits")
        elif cid == b"data":
            if not rate:
                raise EngineError("WAV data before its format")
            body = body[:len(body) // 2 * 2]
            return np.frombuffer(body, dtype="<i2").copy(), rate
        pos += 8 + size + (size & 1)
    raise EngineError("WAV stream without audio data")


@dataclass(frozen=True)
class Installed:
    """What this machine has, probed once at start-up: flite's voices and espeak-ng's languages."""

    flite_voices: tuple[str, ...] = ()
    espeak_languages: frozenset[str] = frozenset()  # lower case, as espeak-ng names them ("en-gb-x-rp")
    espeak: bool = False


def flite_voices() -> tuple[str, ...]:
    """`flite -lv` without its limited-domain voices (awb_time only says the time of day)."""
    if shutil.which("flite") is None:
        return ()
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=10).stdout
    listed = out.partition(":")[2].split()
    return tuple(v for v in FLITE_VOICES if v in listed) + tuple(
        v for v in listed if v not in FLITE_VOICES and not v.endswith("_time"))


def espeak_languages() -> frozenset[str]:
    """Language codes espeak-ng has a voice for (empty if it is not installed)."""
    if shutil.which(ESPEAK) is None:
        return frozenset()
    out = subprocess.run([ESPEAK, "--voices"], capture_output=True, text=True, timeout=10).stdout
    return frozenset(line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1)


def probe() -> Installed:
    """Runs flite and espeak-ng (blocking: call it in a thread)."""
    return Installed(flite_voices(), espeak_languages(), shutil.which(ESPEAK) is not None)


class OfflineProvider(TtsProvider):
    """flite / espeak-ng, at most `concurrency` processes at once (a bounded pool: extra pieces
    wait their turn instead of forking without limit)."""

    name = "offline"

    def __init__(self, settings: OfflineSettings | None = None, *, on_spawn: Callable[[int], None] | None = None,
                 installed: Installed | None = None):
        settings = settings or OfflineSettings()
        default_voice, concurrency = settings.voice, settings.concurrency
        if default_voice not in (*FLITE_VOICES, ESPEAK):
            raise ValueError(f"unknown offline voice {default_voice!r}")
        self.default_voice = default_voice
        self.trim = settings.trim_leading_silence
        self._installed = installed
        self._caps: common_pb2.ProviderCapabilities | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self.on_spawn = on_spawn  # tests observe the processes they expect to be killed

    async def warm(self) -> None:
        """Probe the installed voices in a thread: `flite -lv` and `espeak-ng --voices` take ~50 ms."""
        if self._installed is None:
            self._installed = await asyncio.to_thread(probe)
            self._caps = None

    @property
    def installed(self) -> Installed:
        if self._installed is None:  # not warmed (a CLI, a unit test): probe now, once
            self._installed = probe()
        return self._installed

    @property
    def languages(self) -> frozenset[str]:
        """espeak-ng's language codes."""
        return self.installed.espeak_languages

    @property
    def voices(self) -> tuple[str, ...]:
        return self.installed.flite_voices + ((ESPEAK,) if self.installed.espeak else ())

    def capabilities(self) -> common_pb2.ProviderCapabilities:
        """The installed voices (flite's, and "espeak-ng"); languages: English (flite) and every
        language espeak-ng has a voice for."""
        if self._caps is None:
            tags = (["en"] if self.installed.flite_voices else []) + sorted(
                {canonical(code) for code in self.installed.espeak_languages})
            self._caps = common_pb2.ProviderCapabilities(
                provider=self.name, voices=self.voices, languages=list(dict.fromkeys(tags)),
                available=bool(self.voices))
        return self._caps

    def has_voice(self, voice: str) -> bool:
        return voice in self.voices

    def speaks(self, language: str) -> bool:
        caps = self.capabilities()
        return bool(caps.languages) and supported(caps.languages, language)

    def espeak_voice(self, language: str) -> str | None:
        """espeak-ng's voice for a language code: exact ("fr-be") or the first regional one ("fr")."""
        language = language.lower()
        if language in self.languages:
            return language
        return next((v for v in sorted(self.languages) if v.startswith(language + "-")), None)

    def open(self, utterance: Utterance) -> OfflineStream:
        return OfflineStream(self, utterance)


class OfflineStream(ProviderStream):
    def __init__(self, provider: OfflineProvider, utterance: Utterance):
        self.p = provider
        self.u = utterance
        voice = utterance.voice if provider.has_voice(utterance.voice) else provider.default_voice
        english = utterance.language.lower().startswith("en")
        self.engines = [voice, ESPEAK] if voice != ESPEAK and english else [ESPEAK]

    def _command(self, engine: str, text: str) -> tuple[list[str], bytes | None]:
        speed = self.u.speed or 1.0
        if engine == ESPEAK:
            lang = "en-us" if self.u.language.lower().startswith("en") else self.p.espeak_voice(self.u.language)
            if lang is None:
                raise EngineError(f"espeak-ng has no voice for {self.u.language!r}")
            return [ESPEAK, "--stdout", "-v", lang, "-s", str(int(175 * speed)), "--stdin"], text.encode()
        return ["flite", "-voice", engine, "--setf", f"duration_stretch={1 / speed:.3f}",
                "-t", text, "-o", "/dev/stdout"], None

    async def _run(self, engine: str, text: str) -> tuple[np.ndarray, int]:
        argv, stdin = self._command(engine, text)
        async with self.p._slots:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except OSError as exc:
                raise EngineError(f"cannot run {argv[0]}: {exc}") from exc
            if self.p.on_spawn:
                self.p.on_spawn(proc.pid)
            try:
                out, err = await proc.communicate(stdin)
            finally:
                if proc.returncode is None:  # cancelled mid-synthesis: the process must not outlive it
                    proc.kill()
                    await proc.wait()
        if proc.returncode != 0:
            raise EngineError(f"{argv[0]} exited {proc.returncode}: {err.decode(errors='replace')[-200:]}")
        return parse_wav(out)

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        last: Exception | None = None
        for engine in self.engines:
            try:
                samples, rate = await self._run(engine, text)
            except EngineError as exc:
                log.warning("offline engine failed", extra={"engine": engine, "error": str(exc)})
                last = exc
                continue
            if self.p.trim:  # ~50 µs of numpy for a sentence: inline
                samples = trim_leading_silence(samples, rate)
            if rate != self.u.rate:
                loop = asyncio.get_running_loop()
                samples = await loop.run_in_executor(None, resample, samples, rate, self.u.rate)
            yield samples
            return
        raise ProviderError(f"offline synthesis failed: {last}")
        # aclose: nothing to do, processes are killed by the cancelled synthesize() itself
