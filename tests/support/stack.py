"""The whole offline product as `make run` runs it (redis-server, VAD, STT, LLM, TTS, the
orchestrator and media, each its own process on loopback, embedded providers, no API keys), for
tests and benchmarks that drive it from a real browser. Services start in parallel.

    with OfflineStack() as stack:
        async with InterviewsClient(stack.orchestrator.address, stack.api_key) as api: ...
"""
from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support.procs import MediaProcess, RedisServer, ServiceProcess

AI_SERVICES = ("vad", "stt", "llm", "tts")


class OfflineStack:
    """Every service as its own process on offline providers; media points at the orchestrator."""

    def __init__(self, env: dict[str, dict[str, str]] | None = None, start_timeout_s: float = 60.0):
        """`env`: extra environment per service name ("vad", ..., "orchestrator", "media")."""
        extra = env or {}
        self.api_key = "stack-" + secrets.token_hex(16)
        self.start_timeout_s = start_timeout_s
        self.redis = RedisServer()
        self.media = MediaProcess("media", env={"MEDIA_ICE_LOOPBACK_ONLY": "true", "MEDIA_ICE_TIMEOUT_S": "5",
                                                **extra.get("media", {})})
        self.ai = {name: ServiceProcess(name, env={**({"TTS_PROVIDERS": "offline"} if name == "tts" else {}),
                                                   **extra.get(name, {})})
                   for name in AI_SERVICES}
        self.orchestrator = ServiceProcess("orchestrator", env={
            "ORCHESTRATOR_API_KEYS": f"stack:{self.api_key}",
            "ORCHESTRATOR_JOIN_TOKEN_SECRET": secrets.token_hex(32),
            "ORCHESTRATOR_PUBLIC_BASE_URL": self.media.url, "VIDEO_ADDR": "",
            **{f"{name.upper()}_ADDR": p.address for name, p in self.ai.items()}, **extra.get("orchestrator", {})})
        self.media.env["ORCHESTRATOR_ADDR"] = self.orchestrator.address

    @property
    def services(self) -> dict[str, ServiceProcess]:
        return {**self.ai, "orchestrator": self.orchestrator, "media": self.media}

    def start(self) -> "OfflineStack":
        self.redis.start()
        self.orchestrator.env["REDIS_URL"] = self.redis.url
        procs = list(self.services.values())
        try:
            with ThreadPoolExecutor(len(procs)) as pool:
                list(pool.map(lambda p: p.start(self.start_timeout_s), procs))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for p in self.services.values():
            p.stop()
        self.redis.stop()

    def __enter__(self) -> "OfflineStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
