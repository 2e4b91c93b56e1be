"""Serving: the aiohttp app on MEDIA_HOST:MEDIA_PORT (HTTPS with MEDIA_TLS_CERT/KEY) until SIGTERM,
which refuses new offers and closes every peer before exiting."""
from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from services.common import config, logs, metrics, telemetry
from services.media.config import MediaConfig
from services.media.gateway import Gateway

log = logging.getLogger("media")


def ssl_context(cfg: MediaConfig) -> ssl.SSLContext | None:
    if not cfg.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key or None)
    return ctx


async def serve(cfg: MediaConfig, ready: asyncio.Event | None = None) -> None:
    metrics.watch_event_loop("media", asyncio.get_running_loop())
    gateway = Gateway(cfg)
    runner = web.AppRunner(gateway.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, cfg.server.host, cfg.http_port, ssl_context=ssl_context(cfg),
                       reuse_port=cfg.reuse_port or None)
    await site.start()
    scheme = "https" if cfg.tls_cert else "http"
    log.info("serving", extra={"url": f"{scheme}://{cfg.server.host}:{cfg.http_port}/"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("draining", extra={"peers": len(gateway.peers)})
    await runner.cleanup()  # on_shutdown: close every peer
    log.info("stopped")


def main() -> None:
    cfg = config.load_or_exit(MediaConfig, "media")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        print("MediaConfig: invalid configuration:\n  - MEDIA_TLS_CERT and MEDIA_TLS_KEY go together", flush=True)
        raise SystemExit(2)
    logs.setup("media", cfg.server.log_level)
    telemetry.setup_tracing("media")
    metrics.serve("media", cfg.server.host, cfg.server.metrics_port)
    asyncio.run(serve(cfg))
