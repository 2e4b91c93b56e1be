"""What the code says a deployment must agree with: each service's config variables and ports."""
from __future__ import annotations

import dataclasses
import functools
import importlib
import re
import typing
from pathlib import Path

from services.common import config
from services.common.server import DEFAULT_PORTS
from tests.support.procs import ROOT

DEPLOY = ROOT / "deploy"
# Every service that exists (a services/NAME/__main__.py), media included.
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/__main__.py"))
GRPC_SERVICES = sorted(DEFAULT_PORTS)
AI_SERVICES = sorted(set(GRPC_SERVICES) - {"orchestrator"})
# Read outside the config classes: OpenTelemetry's SDK, and media finds the orchestrator through
# services.common.channels.service_target (ORCHESTRATOR_ADDR).
SHARED_VARIABLES = re.compile(r"^OTEL_[A-Z_]+$|^PYTHONUNBUFFERED$")
EXTRA_VARIABLES = {"media": {"ORCHESTRATOR_ADDR"}}


@functools.cache
def config_class(service: str) -> type:
    module = importlib.import_module(f"services.{service}.config")
    found = [obj for obj in vars(module).values()
             if dataclasses.is_dataclass(obj) and isinstance(obj, type) and obj.__module__ == module.__name__
             and "server" in {f.name for f in dataclasses.fields(obj)}]
    assert len(found) == 1, f"services.{service}.config: expected one config class with a server field, got {found}"
    return found[0]


@functools.cache
def variables(service: str) -> dict[str, str]:
    """Variable -> default, exactly as `python -m services.NAME env` lists them."""
    return {name: default for name, default, _ in config.describe(config_class(service), service)}


def reads(service: str, variable: str) -> bool:
    return (variable in variables(service) or bool(SHARED_VARIABLES.match(variable))
            or variable in EXTRA_VARIABLES.get(service, set()))


def secret_variables(service: str) -> set[str]:
    """Variables declared secret=True in the service's config (they belong in a Secret)."""
    cls = config_class(service)
    hints = typing.get_type_hints(cls)
    return {config.var_name(service, f.name, f.metadata["env"]) for f in dataclasses.fields(cls)
            if not dataclasses.is_dataclass(hints[f.name]) and "env" in f.metadata and f.metadata["env"].secret}


def path(*parts: str) -> Path:
    return DEPLOY.joinpath(*parts)
