"""Configuration of the llm service (env vars prefixed LLM_; `python -m services.llm env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env, section
from services.common.registry import ProviderSpec, Registry
from services.common.server import ServerSettings

@dataclass(frozen=True)
class GeminiSettings:
    api_key: str = env("", name="GEMINI_API_KEY", secret=True, help="Gemini API key")
    base_url: str = env("", help="Gemini API base URL override (proxies, tests); empty = Google's")
    model: str = env("gemini-2.5-flash", help="Gemini model id")
    api_version: str = env("", help="Gemini API version path segment; empty = the SDK's default")


def _http_url(raw: str) -> str:
    url = raw.strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValueError("expected an http(s) URL such as http://localhost:11434/v1")
    return url


@dataclass(frozen=True)
class OpenAISettings:
    api_key: str = env("", name="OPENAI_API_KEY", secret=True,
                       help="OpenAI API key (a local server ignores it, but the SDK needs one: any value)")
    base_url: str = env("", name="OPENAI_BASE_URL", parse=_http_url,
                        help="OpenAI-compatible server, e.g. http://localhost:8000/v1 (vLLM), "
                             "http://localhost:8080/v1 (llama.cpp), http://localhost:11434/v1 (Ollama); "
                             "empty = OpenAI's")
    model: str = env("gpt-4o-mini", help="model id (a local server's own name for it, e.g. llama3.2)")


@dataclass(frozen=True)
class ScriptedSettings:
    delta_words: int = env(3, min=1, max=50, help="words per streamed delta of the scripted interviewer")
    delta_delay_ms: int = env(
        0, min=0, max=1000, help="pause between scripted deltas (0 = yield only; >0 imitates a model's pace)")


# The provider table: adding a provider is its module plus one line here (and its settings class).
PROVIDERS = Registry("LLM_PROVIDERS", [
    ProviderSpec("gemini", "services.llm.providers.gemini:GeminiProvider", GeminiSettings, needs=("api_key",)),
    ProviderSpec("openai", "services.llm.providers.openai:OpenAIProvider", OpenAISettings, needs=("api_key",)),
    ProviderSpec("scripted", "services.llm.providers.scripted:ScriptedProvider", ScriptedSettings),
])
LlmProviderSettings = PROVIDERS.settings_class("LlmProviderSettings")


@dataclass(frozen=True)
class LlmConfig:
    server: ServerSettings
    providers: tuple[str, ...] = env(
        (), parse=PROVIDERS.parse,
        help="provider chain in order, e.g. gemini,scripted or openai,gemini,scripted; empty = gemini,scripted "
             "with a GEMINI_API_KEY, else scripted (openai only when named here)")
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
    provider: LlmProviderSettings = section(LlmProviderSettings, "")

    def chain(self) -> tuple[str, ...]:
        """The provider chain actually used."""
        if self.providers:
            return self.providers
        return ("gemini", "scripted") if self.provider.gemini.api_key else ("scripted",)

    def config_problems(self, prefix: str) -> list[str]:
        return PROVIDERS.problems(self.chain(), self.provider, prefix)
