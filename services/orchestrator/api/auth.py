"""API authentication: bearer API keys, each belonging to a team, checked in one place for every API call.

Keys come from ORCHESTRATOR_API_KEYS as `name:team:role:key` (role `rw` = full access, `ro` =
read-only: Get, List, GetTranscript, WatchEvents), or the older `name:key` / `name:key:ro`, whose
team is the key's name. A key sees and changes only its team's interviews (api/interviews.py). Keys are compared with hmac.compare_digest against every
configured key (no early exit on the first match), and are registered with the log redactor.
A candidate's join token is recognised and refused with PERMISSION_DENIED: it only opens a session.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.common import errors, logs
from services.orchestrator.api.tokens import JoinTokens

log = logging.getLogger("auth")

READ_ONLY_METHODS = frozenset({"GetInterview", "ListInterviews", "GetTranscript", "WatchEvents"})


class AuthError(errors.ServiceError):
    """Missing or unknown credentials (UNAUTHENTICATED) or a key that may not call this (PERMISSION_DENIED)."""

    code = grpc.StatusCode.UNAUTHENTICATED


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: bytes
    read_only: bool
    team: str = ""  # "" = the key's name (the older name:key format)

    def __post_init__(self) -> None:
        if not self.team:
            object.__setattr__(self, "team", self.name)


def parse_keys(spec: str) -> list[ApiKey]:
    """`backend:team-a:rw:KEY,dash:team-a:ro:KEY2,legacy:KEY3` -> keys. Raises ValueError naming
    the bad entry (never the key)."""
    keys: list[ApiKey] = []
    for n, item in enumerate(p.strip() for p in spec.split(",") if p.strip()):
        parts = item.split(":")
        if len(parts) == 4:
            name, team, role, key = parts
        elif len(parts) in (2, 3):
            name, key, team, role = parts[0], parts[1], "", "ro" if len(parts) == 3 else "rw"
            if len(parts) == 3 and parts[2] != "ro":
                role = "?"
        else:
            name = key = team = role = ""
        if not name or len(key) < 16 or role not in ("rw", "ro") or (len(parts) == 4 and not team):
            raise ValueError(f"API key entry {n + 1} must be name:team:rw|ro:key (or name:key, name:key:ro) "
                             "with a key of at least 16 characters")
        if any(k.name == name for k in keys):
            raise ValueError(f"API key name {name!r} is used twice")
        keys.append(ApiKey(name, key.encode(), role == "ro", team))
    return keys


def dev_key(path: Path) -> list[ApiKey]:
    """No keys configured: one ephemeral key named "dev", written to `path` (mode 0600) for the CLI."""
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    log.warning("ORCHESTRATOR_API_KEYS is not set: generated an ephemeral development API key "
                "(the CLI reads it from the file); set ORCHESTRATOR_API_KEYS in any real deployment",
                extra={"key_file": str(path)})
    return [ApiKey("dev", key.encode(), False)]


class Authenticator:
    def __init__(self, keys: list[ApiKey], join_tokens: JoinTokens):
        self.keys = keys
        self.join_tokens = join_tokens
        for k in keys:
            logs.register_secret(k.key.decode())

    def check(self, metadata: tuple[tuple[str, str | bytes], ...] | None, method: str) -> ApiKey:
        """The caller's key for `method`, or AuthError with the status and a clear message."""
        header = ""
        for key, value in metadata or ():
            if key == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
                break
        if not header:
            raise AuthError("missing credentials: send metadata 'authorization: Bearer <API key>'")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("malformed authorization metadata: expected 'Bearer <API key>'")
        presented = token.encode()
        match: ApiKey | None = None
        for k in self.keys:  # compare with every key: timing does not reveal which one matched
            if hmac.compare_digest(presented, k.key):
                match = k
        if match is None:
            if self.join_tokens.looks_like(token):
                raise AuthError("a candidate join token cannot call the Interviews API; use an API key",
                                code=grpc.StatusCode.PERMISSION_DENIED)
            raise AuthError("unknown API key")
        if match.read_only and method not in READ_ONLY_METHODS:
            raise AuthError(f"API key {match.name!r} is read-only and cannot call {method}",
                            code=grpc.StatusCode.PERMISSION_DENIED)
        return match
