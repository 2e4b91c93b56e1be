"""The baseline for the media benchmark: aiortc's own minimal echo, a plain aiortc server that sends
every received audio track straight back (decode -> re-encode, nothing else).

It answers the same non-trickle `POST /i/<id>/offer` and `/hangup` the candidate client speaks (no
token check, no session stream), so the load driver runs the very same client peers against both
and reports media's CPU per peer as a ratio to this.

    python -m tests.load.aiortc_echo --port 8090 [--jitter-prefetch 1]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal

from aiohttp import web
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import MediaStreamTrack

from services.media.gateway import restrict_ice_to_loopback
from services.media.peer import set_jitter_prefetch


class EchoServer:
    def __init__(self, jitter_prefetch: int):
        self.jitter_prefetch = jitter_prefetch
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.sinks: list[MediaBlackhole] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/healthz", self.health), web.post("/i/{iid}/offer", self.offer),
                        web.post("/i/{iid}/hangup", self.hangup)])
        app.on_shutdown.append(lambda _app: self.close_all())
        return app

    async def health(self, _req: web.Request) -> web.Response:
        return web.json_response({"status": "serving", "peers": len(self.pcs)})

    async def offer(self, req: web.Request) -> web.Response:
        body = json.loads(await req.text())
        pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        peer_id = secrets.token_urlsafe(8)
        self.pcs[peer_id] = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                pc.addTrack(track)  # the echo: the sender's encoder consumes the received track
            else:  # the client sends no video, but consume anyway (aiortc queues are unbounded)
                sink = MediaBlackhole()
                sink.addTrack(track)
                self.sinks.append(sink)
                asyncio.ensure_future(sink.start())

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close(peer_id)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
        for t in pc.getTransceivers():
            if t.kind == "audio":
                set_jitter_prefetch(t, self.jitter_prefetch)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp, "type": "answer", "peer_id": peer_id})

    async def hangup(self, req: web.Request) -> web.Response:
        peer_id = str((await req.json()).get("peer_id", ""))
        if peer_id not in self.pcs:
            return web.json_response({"error": "no such call"}, status=404)
        await self._close(peer_id)
        return web.json_response({"ok": True})

    async def _close(self, peer_id: str) -> None:
        pc = self.pcs.pop(peer_id, None)
        if pc is not None:
            await pc.close()

    async def close_all(self) -> None:
        await asyncio.gather(*(self._close(p) for p in list(self.pcs)), return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in self.sinks), return_exceptions=True)


async def serve(port: int, jitter_prefetch: int) -> None:
    restrict_ice_to_loopback()
    runner = web.AppRunner(EchoServer(jitter_prefetch).app(), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.load.aiortc_echo", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jitter-prefetch", type=int, default=4, help="aiortc's default is 4; media runs with 1")
    args = p.parse_args()
    asyncio.run(serve(args.port, args.jitter_prefetch))


if __name__ == "__main__":
    main()
