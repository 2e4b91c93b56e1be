"""One candidate: an aiortc peer connection bridged to one Session.Connect stream.

Every task here is owned by the Peer and cancelled by `close()`, which is idempotent and runs on
hangup, ICE failure or timeout, the browser going silent (killed tab: no RTP for `peer_idle_s`, long
before ICE consent freshness would notice), the orchestrator ending the session, replacement by a
reconnect, and shutdown.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from interview.v1 import common_pb2, session_pb2
from services.common import logs
from services.media.config import MediaConfig
from services.media.inline_decode import decode_on_loop
from services.media.playback import AgentAudioTrack, Playback
from services.media.session_link import SessionLink
from services.media.uplink import UP_RATE, Uplink
from services.media.video import FrameGate, FrameSpec, encode_jpeg

log = logging.getLogger("media.peer")

_ROLES = {common_pb2.ROLE_AGENT: "agent", common_pb2.ROLE_USER: "candidate"}
_MODES = {common_pb2.MODE_CODING: "coding", common_pb2.MODE_CONVERSATIONAL: "conversational"}
LEAVE_REASONS = ("hangup", "page_closed")  # the End button / the tab or window closed


def set_jitter_prefetch(transceiver: Any, packets: int) -> None:
    """Cap aiortc's audio receive jitter buffer (default 4 packets, ~60 ms more delay). The README
    documents the trade-off: lower prefetch, less delay, more concealment on a jittery network."""
    jb = getattr(transceiver.receiver, "_RTCRtpReceiver__jitter_buffer", None)
    if jb is not None:
        jb._prefetch = packets


def leave_reason(raw: Any) -> str:
    """The page's reason for leaving, sent up in Leave; anything unknown counts as a hangup."""
    return raw if raw in LEAVE_REASONS else "hangup"


class Peer:
    def __init__(self, cfg: MediaConfig, interview_id: str, link: SessionLink, pc: RTCPeerConnection,
                 executor: Executor, on_closed: Callable[["Peer"], None]):
        self.id = secrets.token_urlsafe(12)
        self.cfg, self.interview_id, self.link, self.pc = cfg, interview_id, link, pc
        self._executor, self._on_closed = executor, on_closed
        self.uplink = Uplink()
        self.playback = Playback(cfg.playback_buffer_s, self._mark, self._speaking, lambda: self.uplink.offset,
                                 self._agent_caption)
        self.agent_track = AgentAudioTrack(self.playback, cfg.opus_bitrate)
        self.policy = session_pb2.VideoPolicy()
        self.consent = common_pb2.VideoConsent()
        self.channel: Any = None
        self.close_reason = ""
        self.closed = asyncio.Event()
        self.frames_sent = 0
        # per source rate until the orchestrator sends FrameRates (an orchestrator without video never does)
        self.gates = {s: FrameGate(cfg.video_fps, s) for s in (common_pb2.VIDEO_SOURCE_CAMERA,
                                                                 common_pb2.VIDEO_SOURCE_SCREEN)}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending_events: list[dict[str, Any]] = []
        self._started = time.monotonic()

    # ---- set-up -------------------------------------------------------------------------------

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Apply the browser's offer, attach our tracks, return the complete (non-trickle) answer."""
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)
        await self.pc.setRemoteDescription(offer)
        if not any(t.kind == "audio" for t in self.pc.getTransceivers()):
            raise ValueError("the offer has no audio section")
        self.pc.addTrack(self.agent_track)
        for t in self.pc.getTransceivers():
            if t.kind == "video":
                t.direction = "recvonly"  # media never sends video
            elif t.kind == "audio":
                set_jitter_prefetch(t, self.cfg.jitter_prefetch)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._downlink(), "downlink")
        self._spawn(self._ice_deadline(), "ice-deadline")
        return self.pc.localDescription

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(self._guard(coro, name), name=f"peer-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Any, name: str) -> None:
        with logs.bind(interview_id=self.interview_id, peer_id=self.id):
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("peer task failed", extra={"task": name})
                await self.close("error")

    # ---- events from the browser --------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            for t in self.pc.getTransceivers():
                if t.receiver.track is track:
                    decode_on_loop(t.receiver)
            self._spawn(self._consume_audio(track), "audio-in")
            return
        videos = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        index = next((i for i, t in enumerate(videos) if t.receiver.track is track), 0)
        if index == 0:
            spec = FrameSpec(common_pb2.VIDEO_SOURCE_CAMERA, self.cfg.camera_max_px, self.cfg.camera_jpeg_quality)
        else:
            spec = FrameSpec(common_pb2.VIDEO_SOURCE_SCREEN, self.cfg.screen_max_px, self.cfg.screen_jpeg_quality)
        self._spawn(self._consume_video(track, spec), f"video-in-{index}")

    def _on_datachannel(self, channel: Any) -> None:
        self.channel = channel
        channel.on("message", self._on_page_message)
        channel.on("open", self._flush_events)
        self._flush_events()

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("connection state", extra={"state": state})
        if state == "connected":
            log.info("ice connected", extra={"after_ms": round((time.monotonic() - self._started) * 1000)})
        if state in ("failed", "closed"):
            await self.close("ice_failed" if state == "failed" else "closed")

    def _on_page_message(self, raw: Any) -> None:
        try:
            msg = json.loads(raw)
        except (TypeError, ValueError):
            log.warning("unreadable data channel message ignored")
            return
        if msg.get("type") == "consent":
            self.consent = common_pb2.VideoConsent(camera=bool(msg.get("camera")), screen=bool(msg.get("screen")))
            self._spawn(self.link.send(session_pb2.ClientMessage(
                consent=session_pb2.ConsentUpdate(consent=self.consent))), "consent")
        elif msg.get("type") == "hangup":
            self._spawn(self.close(leave_reason(msg.get("reason"))), "hangup")

    # ---- media in -----------------------------------------------------------------------------

    async def _consume_audio(self, track: MediaStreamTrack) -> None:
        """Always consume (aiortc queues are unbounded); no audio for peer_idle_s = browser gone."""
        timeout = self.cfg.ice_timeout_s
        while True:
            try:
                async with asyncio.timeout(timeout):
                    frame = await track.recv()
            except (MediaStreamError, TimeoutError):
                await self.close("browser_gone")
                return
            timeout = self.cfg.peer_idle_s
            for offset, pcm in self.uplink.push(frame):
                self.link.send_audio(session_pb2.ClientMessage(
                    audio=common_pb2.AudioChunk(pcm=pcm, offset_samples=offset)))

    async def _consume_video(self, track: MediaStreamTrack, spec: FrameSpec) -> None:
        gate = self.gates[spec.source]
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            allowed = self._video_allowed(spec.source)
            if not gate.take(time.monotonic(), allowed):
                continue  # without consent nothing leaves this process
            time_ms = int(self.uplink.offset * 1000 / UP_RATE)
            msg = await loop.run_in_executor(self._executor, encode_jpeg, frame, spec, time_ms)
            if self._video_allowed(spec.source):  # consent may have been withdrawn meanwhile
                self.frames_sent += 1
                gate.sent()
                self.link.send_frame(session_pb2.ClientMessage(frame=msg))

    def _video_allowed(self, source: int) -> bool:
        if source == common_pb2.VIDEO_SOURCE_CAMERA:
            return self.consent.camera and self.policy.camera_allowed
        return self.consent.screen and self.policy.screen_allowed

    # ---- session stream down ------------------------------------------------------------------

    async def _downlink(self) -> None:
        import grpc

        try:
            async for msg in self.link.messages():
                kind = msg.WhichOneof("msg")
                if kind == "audio":
                    try:
                        self.playback.add(msg.audio)
                    except ValueError as exc:
                        log.warning("bad agent audio chunk dropped", extra={"error": str(exc)})
                elif kind == "playback":
                    self.playback.control(msg.playback)
                elif kind == "caption":
                    c = msg.caption
                    if c.role == common_pb2.ROLE_AGENT and c.is_final and c.generation_id:
                        self.playback.final_caption(c.generation_id)
                    self._event(type="caption", role=_ROLES.get(c.role, "system"), text=c.text, final=c.is_final)
                elif kind == "state":
                    s = msg.state
                    self._event(type="state", phase_id=s.phase_id, phase=s.phase_title,
                                mode=_MODES.get(s.mode, ""), agent_speaking=s.agent_speaking)
                elif kind == "video_policy":
                    self.policy = msg.video_policy
                    self._event(type="policy", camera=self.policy.camera_allowed, screen=self.policy.screen_allowed)
                elif kind == "frame_rates":
                    self.set_frame_rates(msg.frame_rates)
                elif kind == "credential":
                    self.link.credential = msg.credential
                    self._event(type="credential", credential=msg.credential.credential)
                elif kind == "end":
                    self._event(type="end", reason=msg.end.reason)
                    await asyncio.sleep(0.2)  # let the data channel deliver the reason
                    await self.close("", reason_for_log=f"ended by orchestrator: {msg.end.reason}")
                    return
        except grpc.aio.AioRpcError as exc:
            if not self.link.closed:
                log.warning("session stream failed", extra={"code": exc.code().name, "details": exc.details()})
                self._event(type="error", message="Lost contact with the interview service; reconnecting.")
                await self.close("", reason_for_log=f"session stream failed: {exc.code().name}")
            return
        if not self.link.closed:
            await self.close("", reason_for_log="session stream ended")

    def set_frame_rates(self, rates: session_pb2.FrameRates) -> None:
        """Throttle at the source: the gates drop frames before any scaling or JPEG encoding, and
        the page lowers (or pauses) its video senders so fewer frames are even decoded."""
        self.gates[common_pb2.VIDEO_SOURCE_CAMERA].set_rate(rates.camera_fps)
        self.gates[common_pb2.VIDEO_SOURCE_SCREEN].set_rate(rates.screen_fps)
        self._event(type="frame_rates", camera=round(rates.camera_fps, 2), screen=round(rates.screen_fps, 2))

    def _mark(self, mark: session_pb2.PlaybackMark) -> None:
        self.link.send_audio(session_pb2.ClientMessage(mark=mark))

    def _agent_caption(self, _gen_id: str, text: str, final: bool) -> None:
        self._event(type="caption", role="agent", text=text, final=final)

    def _speaking(self, speaking: bool) -> None:
        self._event(type="speaking", value=speaking)

    def _event(self, **event: Any) -> None:
        self._pending_events.append(event)
        self._flush_events()

    def _flush_events(self) -> None:
        if self.channel is None or self.channel.readyState != "open":
            del self._pending_events[:-64]  # bounded until the channel opens
            return
        for event in self._pending_events:
            self.channel.send(json.dumps(event))
        self._pending_events.clear()

    # ---- closing ------------------------------------------------------------------------------

    async def _ice_deadline(self) -> None:
        await asyncio.sleep(self.cfg.ice_timeout_s)
        if self.pc.iceConnectionState not in ("connected", "completed"):
            await self.close("ice_timeout")

    async def close(self, leave_reason: str, reason_for_log: str = "") -> None:
        """Idempotent: Leave up (when we are the ones ending), session closed, tasks cancelled, peer closed."""
        if self.close_reason:
            return
        self.close_reason = leave_reason or reason_for_log or "closed"
        with logs.bind(interview_id=self.interview_id, peer_id=self.id):
            log.info("closing peer", extra={"reason": self.close_reason})
            if leave_reason == "shutdown":  # scale-in, rolling update: the page rejoins through another instance
                self._event(type="reconnect", message="This server is restarting; moving you to another one…")
                await asyncio.sleep(0.2)  # let the data channel deliver it before the peer closes
            self._on_closed(self)
            self.agent_track.stop()
            try:
                await self.link.close(leave_reason)  # before cancelling the reader: that would cancel the call
            finally:
                # even when this close is cancelled (handler gone, shutdown): the peer connection
                # owns a decoder thread per receiver, which only pc.close() stops
                me = asyncio.current_task()
                for task in list(self._tasks):
                    if task is not me:
                        task.cancel()
                await self.pc.close()
                self.closed.set()
