"""Environment variables -> a frozen dataclass per service.

Every problem (missing, unparsable, out of range) is collected and reported together at start-up,
so an operator fixes a deployment in one pass instead of one restart per variable.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_META = "env"
_PREFIX = "env_prefix"


class ConfigError(Exception):
    """All problems found while loading a config, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclasses.dataclass(frozen=True)
class _EnvSpec:
    name: str | None
    help: str
    secret: bool
    choices: tuple[Any, ...] | None
    min: float | None
    max: float | None
    parse: Callable[[str], Any] | None


def env(
    default: Any = dataclasses.MISSING,
    *,
    name: str | None = None,
    help: str = "",
    secret: bool = False,
    choices: tuple[Any, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """Declare a config field read from the environment.

    `name` overrides the variable name (default: PREFIX_FIELD in upper case); use it for
    variables shared across services such as API keys. Secret fields are hidden from repr and
    registered with the log redactor.
    """
    spec = _EnvSpec(name, help, secret, choices, min, max, parse)
    kwargs: dict[str, Any] = {"metadata": {_META: spec}, "repr": not secret}
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


def section(cls: type, suffix: str) -> Any:
    """A nested settings dataclass read with the service prefix plus `suffix` (e.g. `gemini`
    inside the llm config reads LLM_GEMINI_MODEL); defaults to `cls()` when built by hand."""
    return dataclasses.field(default_factory=cls, metadata={_PREFIX: suffix})


def _sub_prefix(prefix: str, f: dataclasses.Field) -> str:  # type: ignore[type-arg]
    suffix = f.metadata.get(_PREFIX, "")
    if not suffix:
        return prefix
    return f"{prefix}_{suffix}" if prefix else suffix


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _parser_for(tp: Any) -> Callable[[str], Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _parser_for(args[0])
        return lambda raw: None if raw.strip() == "" else inner(raw)
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        inner = _parser_for(item)
        return lambda raw: tuple(inner(p.strip()) for p in raw.split(",") if p.strip())
    if tp is bool:
        return _parse_bool
    if tp in (int, float, str):
        return tp
    raise TypeError(f"unsupported config type {tp!r}")


def var_name(prefix: str, field_name: str, spec: _EnvSpec | None) -> str:
    if spec is not None and spec.name:
        return spec.name
    return f"{prefix}_{field_name}".upper() if prefix else field_name.upper()


def load(cls: type[T], prefix: str = "", environ: Mapping[str, str] | None = None) -> T:
    """Build `cls` from the environment; raise ConfigError listing every problem.

    Nested dataclass fields are loaded with the same prefix (so a service config can embed
    the shared ServerSettings and get VAD_PORT, VAD_MAX_STREAMS, ...).
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    value = _load(cls, prefix, environ, problems)
    if problems:
        raise ConfigError(problems)
    return value


def _load(cls: type[T], prefix: str, environ: Mapping[str, str], problems: list[str]) -> T:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            values[f.name] = _load(tp, _sub_prefix(prefix, f), environ, problems)
            continue
        spec: _EnvSpec | None = f.metadata.get(_META)
        name = var_name(prefix, f.name, spec)
        raw = environ.get(name)
        if raw is None:
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
            else:
                problems.append(f"{name}: required but not set" + (f" ({spec.help})" if spec and spec.help else ""))
            continue
        try:
            parse = spec.parse if spec and spec.parse else _parser_for(tp)
            value = parse(raw)
        except (ValueError, TypeError) as exc:
            if spec and spec.secret:  # the parser's message may quote the value: say nothing of it
                problems.append(f"{name}: cannot parse the (secret) value as {getattr(tp, '__name__', tp)}")
            else:
                problems.append(f"{name}: cannot parse {raw!r} as {getattr(tp, '__name__', tp)}: {exc}")
            continue
        if spec is not None:
            if spec.choices is not None and value not in spec.choices:
                problems.append(f"{name}: {value!r} is not one of {', '.join(map(str, spec.choices))}")
                continue
            if spec.min is not None and value is not None and value < spec.min:
                problems.append(f"{name}: {value} is below the minimum {spec.min}")
                continue
            if spec.max is not None and value is not None and value > spec.max:
                problems.append(f"{name}: {value} is above the maximum {spec.max}")
                continue
            if spec.secret and value:
                from services.common import logs

                logs.register_secret(str(value))
        values[f.name] = value
    if problems:  # the caller raises ConfigError with the full list
        return None  # type: ignore[return-value]
    value = cls(**values)
    check = getattr(value, "config_problems", None)
    if callable(check):  # rules across fields (e.g. a provider in the chain without its API key)
        problems.extend(check(prefix))
    return value


def load_or_exit(cls: type[T], prefix: str = "", environ: Mapping[str, str] | None = None) -> T:
    """`load`, but print the problems readably and exit 2: for service entry points."""
    try:
        return load(cls, prefix, environ)
    except ConfigError as exc:
        print(f"{cls.__name__}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(variable, default, help) rows for docs and `--help-env`."""
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, _sub_prefix(prefix, f)))
            continue
        spec = f.metadata.get(_META)
        default = "(required)" if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING else (
            repr(f.default) if f.default is not dataclasses.MISSING else "(computed)")
        rows.append((var_name(prefix, f.name, spec), default, spec.help if spec else ""))
    return rows
