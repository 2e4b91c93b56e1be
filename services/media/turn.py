"""Short-lived TURN credentials, coturn's shared-secret REST scheme (`use-auth-secret` +
`static-auth-secret` in turnserver.conf): username = "<expiry unix time>:<session>",
credential = base64(HMAC-SHA1(secret, username)). coturn recomputes the HMAC and refuses an
expired username, so a leaked credential is worth at most MEDIA_TURN_TTL_S, and each session
(each page connect, each media peer) gets its own."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time


def turn_credentials(secret: str, session: str, ttl_s: float, now: float | None = None) -> tuple[str, str]:
    """(username, credential) valid until now + ttl_s for `session`."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{session}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()
