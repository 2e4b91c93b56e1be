"""Candidate join tokens: HMAC-SHA256 signed, scoped to one interview, expiring.

Format: `jt1.<base64url(json payload)>.<base64url(signature)>`. Stateless, so any orchestrator
instance that shares the signing key can verify one (Session.Connect does, in the next issue).
A join token never authorises the Interviews API (see auth.py).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import grpc

from services.common import errors

PREFIX = "jt1"


class TokenError(errors.ServiceError, ValueError):
    """Why a token was refused, in words a person understands (never contains the token)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class WrongInterview(TokenError):
    """A valid token, for another interview."""

    code = grpc.StatusCode.PERMISSION_DENIED


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class JoinClaims:
    interview_id: str
    expires_at: float
    nonce: str
    gen: int = 0  # the interview's link generation when issued (ReissueJoinLink bumps it)


class JoinTokens:
    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise ValueError("the join token signing key must be at least 16 bytes")
        self._key = secret

    @staticmethod
    def ephemeral() -> "JoinTokens":
        return JoinTokens(secrets.token_bytes(32))

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, f"{PREFIX}.{body}".encode(), hashlib.sha256).digest())

    def issue(self, interview_id: str, now: float, ttl_s: float, gen: int = 0) -> tuple[str, float]:
        expires = int(now + ttl_s)
        payload: dict[str, object] = {"iid": interview_id, "exp": expires, "n": secrets.token_hex(8)}
        if gen:
            payload["g"] = gen
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{PREFIX}.{body}.{self._sign(body)}", float(expires)

    def derive(self, purpose: str) -> "JoinTokens":
        """A signer with a key derived for `purpose` (e.g. session credentials), so a token of one
        kind never verifies as the other."""
        return JoinTokens(hmac.new(self._key, f"derive:{purpose}".encode(), hashlib.sha256).digest())

    def looks_like(self, token: str) -> bool:
        return token.startswith(PREFIX + ".")

    def verify(self, token: str, interview_id: str | None, now: float) -> JoinClaims:
        """Check signature, expiry and (if given) the interview; raise TokenError otherwise."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise TokenError("not a join token")
        if not hmac.compare_digest(self._sign(parts[1]), parts[2]):
            raise TokenError("the join token's signature is invalid (tampered, or signed with another key)")
        try:
            payload = json.loads(_unb64(parts[1]))
            claims = JoinClaims(str(payload["iid"]), float(payload["exp"]), str(payload.get("n", "")),
                                int(payload.get("g", 0)))
        except (ValueError, KeyError, TypeError):
            raise TokenError("the join token's payload is malformed") from None
        if now >= claims.expires_at:
            raise TokenError("the join link has expired; ask for a new one")
        if interview_id is not None and claims.interview_id != interview_id:
            raise WrongInterview("the join token belongs to another interview")
        return claims
