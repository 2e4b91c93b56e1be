"""Structured logging: one JSON object per line, request context from contextvars.

Ids (interview, session, stream) are bound once with `bind()` and appear on every line logged in
that task and its children, never passed by hand. Secrets registered at config load and anything
that looks like a bearer token or a token query parameter are redacted before a line is written.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_context", default={})
_secrets: set[str] = set()
_service = "unknown"

# Bearer tokens, token-ish query/JSON parameters, and JWT-shaped strings.
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:token|credential|api[_-]?key|key|secret|password)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
]


def register_secret(value: str) -> None:
    """Never log this value (API keys, signing keys). Short values are ignored: they'd redact words."""
    if value and len(value) >= 6:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "<redacted>", text)
    return text


@contextlib.contextmanager
def bind(**ids: str) -> Iterator[None]:
    """Attach ids (interview_id=..., session_id=...) to every log line in this context.

    Safe across `yield` in async-generator handlers: grpc may finalise a cancelled generator
    from another task, where the token cannot be reset; the previous ids are restored instead.
    """
    previous = _context.get()
    token = _context.set({**previous, **{k: str(v) for k, v in ids.items() if v}})
    try:
        yield
    finally:
        try:
            _context.reset(token)
        except ValueError:  # finalised in a different context
            _context.set(previous)


def bound() -> dict[str, str]:
    return dict(_context.get())


_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": _service,
            "component": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_context.get())
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value if isinstance(value, (int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


def setup(service: str, level: str = "INFO", stream: Any = None) -> None:
    """Configure the root logger for a service process (idempotent)."""
    global _service
    _service = service
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter below WARNING is rarely useful in production logs.
    for noisy in ("grpc", "asyncio", "websockets", "httpx", "httpcore", "aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
