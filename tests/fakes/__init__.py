"""Provider fakes for tests: loopback servers that speak each provider's real wire protocol.

Conventions (every fake follows them):
- The real SDK is pointed at the fake (DeepgramClientEnvironment, HttpOptions(base_url=...),
  base_url/websocket_base_url); the SDK is never mocked.
- Every message a fake sends is built as a dict and passed through `validated(SdkType, payload)`,
  which checks it against the SDK's own response type in strict mode with unknown fields
  forbidden, so a fake cannot drift from what the SDK (and so the provider) accepts.
- Fakes take knobs for failure modes (drop the connection, delay, reject the key, error message)
  and record what they received so tests can assert on the request side too.
- Each provider test that applies to the real service is also marked
  `@pytest.mark.live("PROVIDER_API_KEY")` and runs against the cloud when that key is set.
"""
from __future__ import annotations

import json
from typing import Any


def validated(model: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Return `payload` unchanged after checking it against the SDK type `model` (pydantic)."""
    model.model_validate_json(json.dumps(payload), strict=True, extra="forbid")
    return payload
