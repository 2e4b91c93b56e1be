"""Configuration of the media service (env vars prefixed MEDIA_; `python -m services.media env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env
from services.media.ratelimit import parse_networks


def _networks(raw: str) -> tuple[str, ...]:
    items = tuple(p.strip() for p in raw.split(",") if p.strip())
    parse_networks(items)  # ValueError names the bad one
    return items

DEFAULT_HTTP_PORT = 8080


@dataclass(frozen=True)
class HttpSettings:
    """media's own server settings: it serves HTTP(S) + WebRTC, not gRPC, so the gRPC-only knobs of
    services.common.server.ServerSettings (max streams, message size, keepalive) do not apply."""

    host: str = env("127.0.0.1", help="address to bind; 0.0.0.0 in containers")
    port: int = env(DEFAULT_HTTP_PORT, min=1, max=65535, help="HTTP(S) port of the candidate page and /offer")
    shutdown_grace_s: float = env(10.0, min=0, help="on SIGTERM, how long closing every peer may take")
    metrics_port: int = env(0, min=-1, max=65535, help="Prometheus /metrics port (not the public page's); "
                                                     "0 = the default 9107, -1 = off")
    log_level: str = env("INFO", name="LOG_LEVEL", parse=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass(frozen=True)
class MediaConfig:
    server: HttpSettings  # MEDIA_HOST, MEDIA_PORT, MEDIA_SHUTDOWN_GRACE_S, LOG_LEVEL
    tls_cert: str = env("", help="PEM certificate file: serve HTTPS (browsers grant the mic off localhost only on HTTPS)")
    tls_key: str = env("", help="PEM private key file for MEDIA_TLS_CERT")
    ice_servers: tuple[str, ...] = env((), help="comma-separated STUN/TURN URLs given to browsers and used by media, "
                                                "e.g. turn:turn.example.com:3478?transport=udp")
    turn_secret: str = env("", secret=True, help="coturn static-auth-secret: every session gets its own short-lived "
                                                "TURN credential (preferred over a static username/credential)")
    turn_ttl_s: float = env(3600.0, min=60, max=86400, help="lifetime of the TURN credentials made with MEDIA_TURN_SECRET")
    turn_username: str = env("", help="static username for the TURN URLs (without MEDIA_TURN_SECRET)")
    turn_credential: str = env("", secret=True, help="static credential for the TURN URLs (without MEDIA_TURN_SECRET)")
    offer_rate_per_min: float = env(20.0, min=0, help="offers (and ICE configs) per minute per client address; "
                                                     "beyond it HTTP 429 with Retry-After (0 = no limit)")
    offer_burst: int = env(10, min=1, help="offers a client address may make at once before the rate applies")
    trusted_proxies: tuple[str, ...] = env((), parse=_networks,
                                           help="comma-separated addresses/CIDRs of reverse proxies whose "
                                                "X-Forwarded-For is believed (no one else's is)")
    ice_loopback_only: bool = env(False, help="test mode: offer only 127.0.0.1 host candidates (loopback-only hosts)")
    ice_timeout_s: float = env(10.0, min=1, max=120, help="a peer whose ICE has not connected after this long is closed")
    peer_idle_s: float = env(3.0, min=0.5, max=60, help="no inbound audio for this long = the browser is gone; close")
    jitter_prefetch: int = env(1, min=0, max=8, help="20 ms packets aiortc's audio jitter buffer holds before "
                                                    "playing out (aiortc's default 4 adds ~60 ms)")
    opus_bitrate: int = env(32000, min=6000, max=510000, help="bits/s of the agent's voice to browsers (mono Opus; "
                                                              "aiortc's own default is 96000 stereo)")
    playback_buffer_s: float = env(60.0, min=1, max=600, help="most agent audio queued per peer; beyond it, "
                                                             "audio is dropped with a warning")
    max_peers: int = env(200, min=1, help="concurrent peers before offers get 503")
    video_fps: float = env(2.0, min=0.1, max=5, help="frames per second and source sent up (consent only)")
    camera_max_px: int = env(720, min=64, max=4096, help="camera frames scaled to at most this on the long side")
    screen_max_px: int = env(1280, min=64, max=4096, help="screen frames scaled to at most this on the long side")
    camera_jpeg_quality: int = env(75, min=10, max=100, help="JPEG quality of camera frames")
    screen_jpeg_quality: int = env(85, min=10, max=100, help="JPEG quality of screen frames")
    reuse_port: bool = env(False, help="SO_REUSEPORT: run several media processes on one port (see README)")
    join_timeout_s: float = env(5.0, min=0.5, max=60, help="how long the orchestrator may take to accept a join")

    @property
    def http_port(self) -> int:
        return self.server.port
