"""Configuration of the tts service (env vars prefixed TTS_; `python -m services.tts env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env, section
from services.common.registry import ProviderSpec, Registry
from services.common.server import ServerSettings

# Rates every provider can produce (Cartesia's raw output rates; offline audio is resampled).
SUPPORTED_RATES = (8000, 16000, 22050, 24000, 44100, 48000)


@dataclass(frozen=True)
class CartesiaSettings:
    api_key: str = env("", name="CARTESIA_API_KEY", secret=True, help="Cartesia API key")
    base_url: str = env("https://api.cartesia.ai", help="Cartesia REST base URL")
    ws_url: str = env("", help="Cartesia websocket base URL; empty = base URL with wss://")
    model: str = env("sonic-3", help="Cartesia model id")
    voice: str = env("6ccbfb76-1fc6-48f7-b71d-91ac6298247b", help="Cartesia voice id used by default")
    timeout_s: float = env(3.0, min=0.1, help="longest wait for the next Cartesia message before falling back")
    idle_connections: int = env(2, min=0, max=64, help="warm websocket connections kept for the next utterance")


@dataclass(frozen=True)
class OfflineSettings:
    voice: str = env("rms", help="flite voice (rms, slt, awb, kal16, kal) or espeak-ng")
    concurrency: int = env(4, min=1, max=64, help="flite/espeak-ng processes running at once")
    trim_leading_silence: bool = env(True, help="cut each piece's leading near-silence (flite: ~170-250 ms) "
                                     "down to a 20 ms lead, so the first word comes sooner")


# The provider table: adding a provider is its module plus one line here (and its settings class).
PROVIDERS = Registry("TTS_PROVIDERS", [
    ProviderSpec("cartesia", "services.tts.providers.cartesia:CartesiaProvider", CartesiaSettings, needs=("api_key",)),
    ProviderSpec("offline", "services.tts.providers.offline:OfflineProvider", OfflineSettings),
])
TtsProviderSettings = PROVIDERS.settings_class("TtsProviderSettings")


@dataclass(frozen=True)
class TtsConfig:
    server: ServerSettings
    providers: tuple[str, ...] = env(("cartesia", "offline"), parse=PROVIDERS.parse, help="provider chain in fallback order "
                                     "(cartesia is skipped when CARTESIA_API_KEY is unset)")
    default_rate: int = env(24000, choices=SUPPORTED_RATES, help="output rate when the config gives 0")
    chunk_ms: int = env(32, min=10, max=200, help="audio per SpeechChunk message")
    max_text_chars: int = env(20000, min=100, help="text one stream may send (RESOURCE_EXHAUSTED beyond)")
    first_piece_words: int = env(3, min=1, max=20, help="a first piece may end at a comma after this many words")
    max_piece_words: int = env(40, min=5, max=200, help="pieces longer than this are split at a word boundary")
    breaker_failures: int = env(2, min=1, help="consecutive provider failures that open its breaker")
    breaker_cooldown_s: float = env(30.0, min=0, help="how long an open breaker skips its provider")
    provider: TtsProviderSettings = section(TtsProviderSettings, "")
