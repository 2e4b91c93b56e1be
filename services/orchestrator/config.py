"""Configuration of the orchestrator service (env vars prefixed ORCHESTRATOR_; `python -m services.orchestrator env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env
from services.common.server import ServerSettings


@dataclass(frozen=True)
class OrchestratorConfig:
    server: ServerSettings
    redis_url: str = env("redis://127.0.0.1:6379/0", name="REDIS_URL",
                         help="the interview store (Redis 7 with AOF); shared by every orchestrator instance")
    api_keys: str = env("", secret=True,
                        help="API keys, comma-separated name:key or name:key:ro (read-only); unset = one "
                             "ephemeral key written to DEV_KEY_FILE (development only)")
    dev_key_file: str = env(".run/orchestrator-api-key",
                            help="where the ephemeral development API key is written when API_KEYS is unset")
    join_token_secret: str = env("", secret=True,
                                 help="HMAC key signing candidate join tokens (>= 32 chars); unset = ephemeral "
                                      "(tokens die with the process; development only)")
    join_token_ttl_s: int = env(24 * 3600, min=60, max=30 * 24 * 3600, help="default lifetime of a join token")
    public_base_url: str = env("http://127.0.0.1:8080", help="base of the candidate join links (the media service)")
    retention_s: int = env(30 * 24 * 3600, min=0,
                           help="interview data expires this long after its last write; 0 = keep until deleted")
    key_prefix: str = env("iv:", help="prefix of every Redis key this service writes")
    commands: bool = env(True, help="consume the Redis command stream (<prefix>commands)")
    instance_id: str = env("", help="this instance's name in leases and consumer groups; unset = host-pid")
    watch_block_ms: int = env(5000, min=100, max=60000, help="longest single XREAD BLOCK of WatchEvents")
