"""Configuration of the llm service (env vars prefixed LLM_; `python -m services.llm env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env
from services.common.server import ServerSettings

PROVIDERS = ("gemini", "scripted")


def _provider_list(raw: str) -> tuple[str, ...]:
    names = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(PROVIDERS)}")
    return names


@dataclass(frozen=True)
class LlmConfig:
    server: ServerSettings
    providers: tuple[str, ...] = env(
        (), parse=_provider_list,
        help="provider chain in order, e.g. gemini,scripted; empty = gemini,scripted with a "
             "GEMINI_API_KEY, else scripted")
    gemini_api_key: str = env("", name="GEMINI_API_KEY", secret=True, help="Gemini API key")
    gemini_base_url: str = env("", help="Gemini API base URL override (proxies, tests); empty = Google's")
    gemini_model: str = env("gemini-2.5-flash", help="Gemini model id")
    gemini_api_version: str = env("", help="Gemini API version path segment; empty = the SDK's default")
    temperature: float = env(0.6, min=0.0, max=2.0, help="sampling temperature (requests may override)")
    max_output_tokens: int = env(400, min=16, max=8192, help="output token cap (voice answers are short)")
    first_token_deadline_ms: int = env(
        2500, min=50, max=60000,
        help="a provider with no first token by then is abandoned for the next one")
    request_timeout_s: float = env(30.0, min=1.0, help="upper bound on one whole provider request")
    breaker_cooldown_s: float = env(30.0, min=0.0, help="how long a failed provider is skipped")
    max_history_messages: int = env(400, min=1, help="history longer than this is RESOURCE_EXHAUSTED")
    max_history_chars: int = env(
        120_000, min=100, help="total history text above this is RESOURCE_EXHAUSTED (summarize first)")
    prompt_version: str = env("v1", help="prompt template set under services/llm/prompts/")
    scripted_delta_words: int = env(3, min=1, max=50, help="words per streamed delta of the scripted interviewer")
    scripted_delta_delay_ms: int = env(
        0, min=0, max=1000, help="pause between scripted deltas (0 = yield only; >0 imitates a model's pace)")

    def chain(self) -> tuple[str, ...]:
        """The provider chain actually used."""
        if self.providers:
            return self.providers
        return ("gemini", "scripted") if self.gemini_api_key else ("scripted",)
