"""The HTTP side: candidate page, POST offer -> answer (non-trickle), hangup, health.

Join tokens travel in the link's fragment (never sent to a server, so never in an access log); the
page POSTs it in the offer's JSON body, which is never logged. The join is verified with the
orchestrator before any WebRTC resource is allocated. One live peer per interview: a verified
reconnect replaces the old peer.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aioice.ice
from aiohttp import web
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from interview.v1 import common_pb2, session_pb2, session_pb2_grpc
from services.common import logs, metrics
from services.common.channels import create_channel, service_target
from services.media.config import MediaConfig
from services.media.peer import Peer, leave_reason
from services.common.ratelimit import RateLimiter
from services.media.ratelimit import client_address, parse_networks
from services.media.session_link import JoinRefused, SessionLink
from services.media.turn import turn_credentials
from services.media.uplink import UP_RATE

log = logging.getLogger("media.gateway")

STATIC = Path(__file__).parent / "static"
_IID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_BODY = 256 * 1024  # an SDP offer is a few KB


class BadRequest(Exception):
    pass


def restrict_ice_to_loopback() -> None:
    """Test mode for loopback-only hosts: aioice never offers 127.0.0.1 on its own."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def ice_servers(cfg: MediaConfig, session: str) -> list[dict[str, Any]]:
    """What the page passes to RTCPeerConnection (STUN/TURN, e.g. coturn). With MEDIA_TURN_SECRET
    each call issues `session` its own TURN credential, valid MEDIA_TURN_TTL_S."""
    if cfg.turn_secret:
        username, credential = turn_credentials(cfg.turn_secret, session, cfg.turn_ttl_s)
    else:
        username, credential = cfg.turn_username, cfg.turn_credential
    out: list[dict[str, Any]] = []
    for url in cfg.ice_servers:
        entry: dict[str, Any] = {"urls": url}
        if url.startswith(("turn:", "turns:")) and username:
            entry.update(username=username, credential=credential)
        out.append(entry)
    return out


def parse_offer(body: Any) -> tuple[RTCSessionDescription, session_pb2.Join]:
    """Cheap checks before anything is allocated; raises BadRequest with a readable reason."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    sdp, kind = body.get("sdp"), body.get("type")
    if kind != "offer":
        raise BadRequest('Expected an SDP offer ("type": "offer").')
    if not isinstance(sdp, str) or not sdp.startswith("v=0") or "\nm=audio " not in sdp.replace("\r\n", "\n"):
        raise BadRequest("The SDP offer is malformed: it must be a session description with an audio section.")
    join = session_pb2.Join(audio_format=common_pb2.AudioFormat(sample_rate_hz=UP_RATE, channels=1),
                            client_info=str(body.get("client_info", ""))[:256])
    if isinstance(body.get("credential"), str) and body["credential"]:
        join.session_credential = body["credential"]
    elif isinstance(body.get("token"), str) and body["token"]:
        join.join_token = body["token"]
    else:
        raise JoinRefused(401, "This interview link has no join token. Open the full link you were sent.")
    consent = body.get("consent") or {}
    if isinstance(consent, dict):
        join.consent.CopyFrom(common_pb2.VideoConsent(camera=bool(consent.get("camera")),
                                                      screen=bool(consent.get("screen"))))
    return RTCSessionDescription(sdp=sdp, type="offer"), join


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


_ROUTER_ERRORS = {
    404: "There is no such page. Check the link you were sent.",
    405: "This address does not accept that request method.",
    413: "The request is too large.",
}


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """The router's own refusals (unknown path, wrong method, body too large) as the same JSON
    `{"error": sentence}` the handlers answer, instead of aiohttp's bare "404: Not Found"."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _ROUTER_ERRORS.get(exc.status, exc.reason)
        return web.json_response({"error": message}, status=exc.status, headers={
            k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")})


class Gateway:
    def __init__(self, cfg: MediaConfig):
        self.cfg = cfg
        self.peers: dict[str, Peer] = {}
        metrics.MEDIA_PEERS.set_function(lambda: len(self.peers))
        self.by_interview: dict[str, Peer] = {}
        self.closing: set[Peer] = set()  # forgotten at the start of close(), until their pc is closed
        self.admitting = 0  # offers past the capacity check, not yet peers: they hold a slot
        self._joining: dict[str, tuple[asyncio.Lock, int]] = {}  # one offer at a time per interview (lock, users)
        self.limiter = RateLimiter(cfg.offer_rate_per_min / 60, cfg.offer_burst)
        self.trusted_proxies = parse_networks(cfg.trusted_proxies)
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="media-jpeg")
        self.channel = create_channel(service_target("orchestrator"))
        self.stub = session_pb2_grpc.SessionStub(self.channel)
        self.draining = False
        if cfg.ice_loopback_only:
            restrict_ice_to_loopback()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
        app.add_routes([
            web.get("/", self.home),
            web.get("/healthz", self.health),
            web.get("/config.json", self.page_config),
            web.get("/i/{iid}", self.page),
            web.post("/i/{iid}/offer", self.offer),
            web.post("/i/{iid}/hangup", self.hangup),
            web.static("/static", STATIC),
        ])
        app.on_shutdown.append(lambda _app: self.shutdown())
        return app

    async def home(self, _req: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "home.html")

    async def page(self, req: web.Request) -> web.StreamResponse:
        if not _IID.match(req.match_info["iid"]):
            return web.Response(status=404, text="There is no such interview. Check the link you were sent.")
        resp = web.FileResponse(STATIC / "index.html")
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    async def health(self, _req: web.Request) -> web.Response:
        status = 503 if self.draining else 200
        return web.json_response({"status": "draining" if self.draining else "serving", "peers": len(self.peers)},
                                 status=status)

    def _limited(self, req: web.Request, what: str) -> web.Response | None:
        """429 with Retry-After when this client address is over its rate, else None."""
        addr = client_address(req.remote, req.headers.get("X-Forwarded-For"), self.trusted_proxies)
        wait = self.limiter.take(f"{what}:{addr}")
        if not wait:
            return None
        log.info("rate limited", extra={"endpoint": what, "client": addr})
        return _error(429, "Too many attempts from this network. Please wait a moment and try again.",
                      {"Retry-After": RateLimiter.retry_after(wait)})

    async def page_config(self, req: web.Request) -> web.Response:
        if (limited := self._limited(req, "config")) is not None:
            return limited
        iid = req.query.get("interview", "")
        session = f"{iid if _IID.match(iid) else 'page'}-{secrets.token_hex(4)}"
        resp = web.json_response({"iceServers": ice_servers(self.cfg, session), "videoFps": self.cfg.video_fps})
        resp.headers["Cache-Control"] = "no-store"  # the TURN credential is per session
        return resp

    async def offer(self, req: web.Request) -> web.Response:
        iid = req.match_info["iid"]
        if not _IID.match(iid):
            return _error(404, "There is no such interview. Check the link you were sent.")
        if self.draining:
            return _error(503, "This server is restarting. Please try again in a few seconds.")
        if (limited := self._limited(req, "offer")) is not None:
            return limited
        # The cap counts offers already admitted but still joining: checked and reserved in one
        # step (no await between), so concurrent offers cannot all slip past it.
        if len(self.peers) + self.admitting >= self.cfg.max_peers:
            return _error(503, "The interview service is busy. Please try again in a minute.")
        self.admitting += 1
        slot = [True]  # handed to the peer once it is registered (then it counts in self.peers)
        lock, users = self._joining.get(iid, (asyncio.Lock(), 0))
        self._joining[iid] = (lock, users + 1)
        try:
            async with lock:  # a second offer for the same interview replaces the first, in order
                return await self._offer(req, iid, slot)
        finally:
            if slot[0]:
                self.admitting -= 1
            lock, users = self._joining[iid]
            if users <= 1:
                del self._joining[iid]
            else:
                self._joining[iid] = (lock, users - 1)

    async def _offer(self, req: web.Request, iid: str, slot: list[bool]) -> web.Response:
        with logs.bind(interview_id=iid):
            try:
                body = json.loads(await req.text())
            except (ValueError, UnicodeDecodeError):
                return _error(400, "The request body must be JSON.")
            except web.HTTPRequestEntityTooLarge:
                return _error(413, "The offer is too large.")
            try:
                offer, join = parse_offer(body)
                join.interview_id = iid
                link = await SessionLink.join(self.stub, join, self.cfg.join_timeout_s)
            except BadRequest as exc:
                return _error(400, str(exc))
            except JoinRefused as exc:
                log.info("join refused", extra={"status": exc.http_status, "detail": exc.detail})
                return _error(exc.http_status, exc.message)
            old = self.by_interview.get(iid)
            if old is not None:
                await old.close("replaced")
            peer = Peer(self.cfg, iid, link, self._new_pc(), self.executor, self._forget)
            peer.consent = join.consent
            self.peers[peer.id] = self.by_interview[iid] = peer
            slot[0] = False
            self.admitting -= 1
            try:
                answer = await peer.answer(offer)
            except Exception as exc:  # aiortc raises ValueError and friends for SDP it cannot use
                log.info("offer rejected", extra={"error": f"{type(exc).__name__}: {exc}"})
                await peer.close("bad_offer")
                return _error(400, f"The browser's offer could not be used: {exc}")
            log.info("peer created", extra={"peer_id": peer.id})
            cred = link.credential
            return web.json_response({
                "sdp": answer.sdp, "type": answer.type, "peer_id": peer.id,
                "credential": cred.credential, "session_id": cred.session_id,
                "expires_at": cred.expires_at.ToJsonString() if cred.HasField("expires_at") else "",
            })

    async def hangup(self, req: web.Request) -> web.Response:
        try:
            body = await req.json()
            peer_id = str(body.get("peer_id", ""))
        except (ValueError, AttributeError):
            return _error(400, "The request body must be JSON with a peer_id.")
        peer = self.peers.get(peer_id)
        if peer is None or peer.interview_id != req.match_info["iid"]:
            return _error(404, "No such call (it may have ended already).")
        await peer.close(leave_reason(body.get("reason")))
        return web.json_response({"ok": True})

    def _new_pc(self) -> RTCPeerConnection:
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                   for s in ice_servers(self.cfg, f"media-{secrets.token_hex(4)}")]
        # max-bundle: with aiortc's default (balanced) a second video track never delivers a frame
        return RTCPeerConnection(RTCConfiguration(iceServers=servers or None, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))

    def _forget(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        if self.by_interview.get(peer.interview_id) is peer:
            del self.by_interview[peer.interview_id]
        self.closing = {p for p in self.closing if not p.closed.is_set()}
        self.closing.add(peer)

    async def shutdown(self) -> None:
        """SIGTERM: refuse new offers, close every peer (each sends Leave{shutdown}), close the channel."""
        self.draining = True
        peers = list(self.peers.values())
        log.info("closing every peer", extra={"peers": len(peers)})
        try:
            async with asyncio.timeout(self.cfg.server.shutdown_grace_s):
                await asyncio.gather(*(p.close("shutdown") for p in peers), return_exceptions=True)
                # and the peers already closing (a hangup): cut short by the loop's end, their
                # peer connection would keep its decoder threads and the process would not exit
                await asyncio.gather(*(p.closed.wait() for p in self.closing), return_exceptions=True)
        except TimeoutError:
            log.warning("peers did not close within the grace period")
        await self.channel.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
