"""The provider registry: one table gives the *_PROVIDERS parser, per-provider settings, the
needs check and lazy construction; every service's table is checked here."""
from dataclasses import dataclass

import pytest

from services.common import config
from services.common.config import ConfigError, env, section
from services.common.registry import ProviderSpec, Registry
from services.common.server import ServerSettings


@dataclass(frozen=True)
class CloudSettings:
    api_key: str = env("", name="CLOUD_API_KEY", secret=True)
    model: str = env("big")


@dataclass(frozen=True)
class Built:
    settings: object
    context: dict


def make(settings, **context):
    return Built(settings, context)


TABLE = Registry("SVC_PROVIDERS", [
    ProviderSpec("cloud", f"{__name__}:make", CloudSettings, needs=("api_key",)),
    ProviderSpec("local", f"{__name__}:make"),
])
SvcProviderSettings = TABLE.settings_class("SvcProviderSettings")


@dataclass(frozen=True)
class Svc:
    server: ServerSettings
    providers: tuple[str, ...] = env(("local",), parse=TABLE.parse)
    provider: SvcProviderSettings = section(SvcProviderSettings, "")

    def config_problems(self, prefix: str) -> list[str]:
        return TABLE.problems(self.providers, self.provider, prefix)


def test_unknown_provider_is_a_config_error_listing_the_known_ones():
    with pytest.raises(ConfigError) as err:
        config.load(Svc, "svc", {"SVC_PROVIDERS": "cloud,whisper"})
    assert "SVC_PROVIDERS" in str(err.value) and "unknown provider(s) whisper; known: cloud, local" in str(err.value)


def test_settings_are_read_with_the_provider_prefix_and_listed():
    cfg = config.load(Svc, "svc", {"SVC_PROVIDERS": "cloud, local", "SVC_CLOUD_MODEL": "small", "CLOUD_API_KEY": "k"})
    assert cfg.providers == ("cloud", "local") and cfg.provider.cloud.model == "small"
    assert {"SVC_CLOUD_MODEL", "CLOUD_API_KEY", "SVC_PROVIDERS"} <= {v for v, _, _ in config.describe(Svc, "svc")}


def test_a_provider_in_the_chain_without_what_it_needs_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        config.load(Svc, "svc", {"SVC_PROVIDERS": "cloud"})
    assert err.value.problems == ["SVC_PROVIDERS includes cloud but CLOUD_API_KEY is not set"]
    assert config.load(Svc, "svc", {}).providers == ("local",)  # not in the chain: not needed


def test_create_imports_the_factory_and_passes_settings_and_context():
    cfg = config.load(Svc, "svc", {"CLOUD_API_KEY": "k"})
    built = TABLE.create("cloud", cfg.provider, clock="c")
    assert built.settings.api_key == "k" and built.context == {"clock": "c"}
    assert TABLE.create("local", cfg.provider).settings is None
    with pytest.raises(ValueError, match="known: cloud, local"):
        TABLE.create("whisper", cfg.provider)


@pytest.mark.parametrize("module,variable", [("services.llm.config", "LLM_PROVIDERS"),
                                             ("services.stt.config", "STT_DEFAULT_PROVIDER"),
                                             ("services.tts.config", "TTS_PROVIDERS")])
def test_service_tables_name_importable_factories(module, variable):
    import importlib

    table = importlib.import_module(module).PROVIDERS
    assert table.variable == variable
    for name in table.names:
        mod, _, attr = table.spec(name).factory.partition(":")
        assert hasattr(importlib.import_module(mod), attr), name
