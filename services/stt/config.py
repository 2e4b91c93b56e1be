"""Configuration of the stt service (env vars prefixed STT_; `python -m services.stt env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env, section
from services.common.registry import ProviderSpec, Registry
from services.common.retry import Backoff
from services.common.server import ServerSettings


@dataclass(frozen=True)
class DeepgramSettings:
    api_key: str = env("", name="DEEPGRAM_API_KEY", secret=True, help="Deepgram API key; enables the deepgram provider")
    url: str = env("wss://api.deepgram.com", help="Deepgram websocket base URL (a fake or a self-hosted endpoint in tests)")
    model: str = env("nova-3", help="Deepgram model when the stream names none")
    keepalive_s: float = env(4.0, min=0.05, max=9, help="send KeepAlive after this much time without audio")
    max_replay_s: float = env(30.0, min=1, max=600, name="STT_MAX_REPLAY_S",
                              help="audio kept since the last final result, replayed after a reconnect")
    reconnect_initial_s: float = env(0.5, min=0.01, name="STT_RECONNECT_INITIAL_S",
                                     help="first reconnect delay (doubles each attempt)")
    reconnect_cap_s: float = env(4.0, min=0.01, name="STT_RECONNECT_CAP_S", help="longest reconnect delay")
    reconnect_attempts: int = env(5, min=0, max=100, name="STT_RECONNECT_ATTEMPTS",
                                  help="reconnect attempts before the provider counts as failed")

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.reconnect_initial_s, 2.0, self.reconnect_cap_s, self.reconnect_attempts)


@dataclass(frozen=True)
class OfflineSettings:
    max_decoders: int = env(16, min=1, max=1024,
                            help="pocketsphinx decoders (~90 MB each): utterances open at once across streams")
    warm_decoders: int = env(2, min=0, max=1024,
                             help="decoders loaded at start-up (spread over the workers), so first streams are not slow")
    workers: int = env(0, min=0, max=256,
                       help="decoder worker processes (pocketsphinx holds the GIL: one per core); 0 = one per CPU")
    interim_ms: int = env(250, min=0, max=10_000, help="least time between two offline interim results")


# The provider table, in fallback order: adding a provider is its module (or folder) plus one line
# here (and its settings class). A provider without what it `needs` is not offered.
PROVIDERS = Registry("STT_DEFAULT_PROVIDER", [
    ProviderSpec("deepgram", "services.stt.providers.deepgram:DeepgramProvider", DeepgramSettings, needs=("api_key",)),
    ProviderSpec("offline", "services.stt.providers.offline:OfflineProvider", OfflineSettings),
])
SttProviderSettings = PROVIDERS.settings_class("SttProviderSettings")


@dataclass(frozen=True)
class SttConfig:
    server: ServerSettings
    default_provider: str = env("", choices=("", *PROVIDERS.names),
                                help="provider when a stream asks for none; empty = deepgram with a key, else offline")
    fallback: bool = env(True, help="when a stream's provider fails for good, continue it on the next provider")
    finalize_deadline_ms: int = env(1500, min=50, max=30_000,
                                    help="answer a FINALIZE with the best interim text after this long")
    breaker_cooldown_s: float = env(30.0, min=0, help="a failed provider is skipped by new streams for this long")
    provider: SttProviderSettings = section(SttProviderSettings, "")

    def provider_for(self, requested: str) -> str:
        """The provider a stream starts on: its request, else the configured or implied default."""
        if requested:
            return requested
        if self.default_provider:
            return self.default_provider
        return "deepgram" if self.provider.deepgram.api_key else "offline"
