"""Provider registry: one table per service naming each provider, how to build it and its settings.

From the one table come: the `*_PROVIDERS` parser (an unknown name is a config error listing the
known ones), each provider's settings read with the service prefix plus its name (`gemini` in the
llm service reads LLM_GEMINI_MODEL), the check that a provider in the chain has what it needs (an
API key), and its construction. The factory is named as "module:attribute" and imported only when
the provider is built, so a provider SDK loads only in a process that uses it.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.common import config


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    factory: str  # "package.module:Callable", called as factory(settings, **context)
    settings: type | None = None  # a dataclass of `env` fields, read with PREFIX_NAME_
    needs: tuple[str, ...] = ()  # settings fields that must be set for the provider to run


class Registry:
    """The providers one service knows, in the table's order."""

    def __init__(self, variable: str, specs: Sequence[ProviderSpec]):
        self.variable = variable  # e.g. LLM_PROVIDERS, for messages
        self._specs = {s.name: s for s in specs}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def spec(self, name: str) -> ProviderSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise ValueError(f"unknown provider {name!r}; known: {', '.join(self.names)}") from None

    def parse(self, raw: str) -> tuple[str, ...]:
        """A comma-separated chain (the `parse` of a `*_PROVIDERS` field)."""
        names = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
        unknown = [n for n in names if n not in self._specs]
        if unknown:
            raise ValueError(f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(self.names)}")
        return names

    def settings_class(self, class_name: str) -> type:
        """A dataclass with one `config.section` per provider that has settings, to embed in the
        service config (`cfg.providers_settings.gemini.model`)."""
        fields = [(s.name, s.settings, config.section(s.settings, s.name))
                  for s in self._specs.values() if s.settings is not None]
        return dataclasses.make_dataclass(class_name, fields, frozen=True)

    def unmet(self, name: str, group: Any, prefix: str) -> list[str]:
        """Variables that `name` needs but are empty (e.g. ["GEMINI_API_KEY"])."""
        spec = self.spec(name)
        settings = getattr(group, name, None)
        missing = []
        for f in dataclasses.fields(spec.settings) if spec.settings else ():
            if f.name in spec.needs and not getattr(settings, f.name, None):
                missing.append(config.var_name(f"{prefix}_{name}", f.name, f.metadata.get("env")))
        return missing

    def problems(self, chain: Sequence[str], group: Any, prefix: str) -> list[str]:
        """Config problems of a chain: each provider named without what it needs."""
        return [f"{self.variable} includes {name} but {var} is not set"
                for name in chain for var in self.unmet(name, group, prefix)]

    def create(self, name: str, group: Any, **context: Any) -> Any:
        """Build provider `name` from its settings in `group` and the service's shared context."""
        module, _, attr = self.spec(name).factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        return factory(getattr(group, name, None), **context)
