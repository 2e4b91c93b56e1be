"""The video of one session: consented frames to the video service, its observations into the
interview's events and (the few recent, confident, actionable ones) into the LLM context.

    media frames ─► Vision (consent + policy check) ─► Video.Analyze (ReopeningStream) ─► observations
    phase / mode / consent ─► sampling mode ─► VideoModeUpdate (video service) + FrameRates (media)

Video is optional: without consent nothing is opened and media is told to send nothing (rates 0).
A video service that is down, refuses the stream or breaks never ends or stalls the session: the
stream is retried with backoff and the interview carries on without observations meanwhile.
Observations are untrusted data (OCR'd screen text): they reach the LLM only as context data.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from interview.v1 import common_pb2, interviews_pb2, session_pb2, video_pb2
from services.common.clock import Clock
from services.common.retry import Backoff
from services.orchestrator.conversation.clients import ReopeningStream

log = logging.getLogger("conversation.vision")

CONTEXT_MAX, CONTEXT_WINDOW_S, CONTEXT_MIN_CONFIDENCE = 3, 60.0, 0.7
STATS_AT_END_S = 3.0  # how long a session's end waits for the video service's stats (it drains pending OCR first)
MAX_PENDING_FRAMES = 4  # frames are sampled at ≤ 2 fps: a stream further behind drops them
RETRY = Backoff(initial_s=0.5, factor=2.0, cap_s=15.0, attempts=1_000_000)

# per source frames a second for each sampling mode: (camera, screen)
RATES = {video_pb2.SAMPLING_SCREEN_FOCUS: (0.5, 2.0), video_pb2.SAMPLING_NORMAL: (1.0, 1.0),
         video_pb2.SAMPLING_LOW: (0.5, 0.5), video_pb2.SAMPLING_OFF: (0.0, 0.0)}
NORMAL_PHASES = (common_pb2.PHASE_TECHNICAL_SCREENING, common_pb2.PHASE_SYSTEM_DESIGN)


def sampling_for(phase_kind: int, mode: int, camera: bool, screen: bool) -> int:
    """The interview's phase and mode -> the video sampling mode (`camera`/`screen`: consented and
    allowed by the interview's policy)."""
    if not (camera or screen) or phase_kind == common_pb2.PHASE_WRAP_UP:
        return video_pb2.SAMPLING_OFF
    if phase_kind == common_pb2.PHASE_LIVE_CODING or mode == common_pb2.MODE_CODING:
        return video_pb2.SAMPLING_SCREEN_FOCUS
    if phase_kind in NORMAL_PHASES:
        return video_pb2.SAMPLING_NORMAL
    return video_pb2.SAMPLING_LOW


def frame_rates(sampling: int, camera: bool, screen: bool) -> session_pb2.FrameRates:
    cam, scr = RATES.get(sampling, (0.0, 0.0))
    return session_pb2.FrameRates(camera_fps=cam if camera else 0.0, screen_fps=scr if screen else 0.0)


@dataclass(frozen=True)
class Seen:
    at: float  # this process's monotonic clock when it arrived
    observation: common_pb2.Observation


class Vision:
    def __init__(self, *, stub: Any, interview: interviews_pb2.Interview, stream_id: str, clock: Clock,
                 phase_kind: Callable[[], int], to_media: Callable[[session_pb2.ServerMessage], None],
                 record: Callable[..., Awaitable[None]], retry: Backoff = RETRY):
        self.stub, self.interview, self.stream_id, self.clock = stub, interview, stream_id, clock
        self._phase_kind, self._to_media, self._record, self._retry = phase_kind, to_media, record, retry
        self.consent = common_pb2.VideoConsent()
        self.sampling = video_pb2.SAMPLING_OFF
        self.rates = session_pb2.FrameRates()
        self.seen: deque[Seen] = deque(maxlen=32)
        self.stream: ReopeningStream[video_pb2.AnalyzeRequest, video_pb2.AnalyzeResponse] | None = None
        self._wanted = asyncio.Event()  # a source was consented: open the stream
        self._closing = False
        self._ended = asyncio.Event()  # run() returned: the stream's stats (if any) are recorded
        self.frames_in = self.frames_refused = self.frames_dropped = self.observations = 0
        self.stats: video_pb2.VideoStats | None = None

    # ---- what may be analysed ----

    def _allowed(self) -> tuple[bool, bool]:
        policy = self.interview.video_policy
        return self.consent.camera and policy.camera_allowed, self.consent.screen and policy.screen_allowed

    def _consent(self) -> common_pb2.VideoConsent:
        camera, screen = self._allowed()
        return common_pb2.VideoConsent(camera=camera, screen=screen)

    def retune(self, reason: str = "") -> None:
        """Recompute the sampling mode and rates (phase, mode, consent or policy changed); tell the
        video service and media when they changed. Called from the session's event handlers."""
        camera, screen = self._allowed()
        sampling = sampling_for(self._phase_kind(), self.interview.mode, camera, screen)
        rates = frame_rates(sampling, camera, screen)
        if rates != self.rates or reason == "join":  # media learns the rates at join (0 = send none)
            self.rates = rates
            self._to_media(session_pb2.ServerMessage(frame_rates=rates))
        if sampling != self.sampling:
            log.info("video sampling", extra={"sampling": video_pb2.SamplingMode.Name(sampling), "reason": reason})
            self.sampling = sampling
            if self.stream is not None:
                self.stream.send(video_pb2.AnalyzeRequest(update=video_pb2.VideoModeUpdate(
                    sampling=sampling, interview_mode=self.interview.mode)))

    def set_consent(self, consent: common_pb2.VideoConsent) -> None:
        """The candidate's choice (from media): withdrawing it reaches the video service at once,
        which drops that source's buffered frames."""
        self.consent = common_pb2.VideoConsent(camera=consent.camera, screen=consent.screen)
        camera, screen = self._allowed()
        log.info("video consent", extra={"camera": camera, "screen": screen})
        if self.stream is not None:
            self.stream.send(video_pb2.AnalyzeRequest(update=video_pb2.VideoModeUpdate(consent=self._consent())))
        if camera or screen:
            self._wanted.set()
        self.retune("consent")

    def frame(self, frame: common_pb2.VideoFrame) -> None:
        """A frame from media (already throttled there): forwarded if its source is consented,
        dropped (counted) while the video service is down or behind."""
        self.frames_in += 1
        camera, screen = self._allowed()
        ok = camera if frame.source == common_pb2.VIDEO_SOURCE_CAMERA else \
            screen if frame.source == common_pb2.VIDEO_SOURCE_SCREEN else False
        if not ok or self.sampling == video_pb2.SAMPLING_OFF:
            self.frames_refused += 1
            return
        if self.stream is None or not self.stream.send_audio(video_pb2.AnalyzeRequest(frame=frame)):
            self.frames_dropped += 1

    # ---- observations ----

    def recent(self) -> list[common_pb2.Observation]:
        """For the LLM context: at most the last 3 actionable observations of the last 60 s with
        confidence >= 0.7, oldest first."""
        since = self.clock.monotonic() - CONTEXT_WINDOW_S
        keep = [s.observation for s in self.seen
                if s.at >= since and s.observation.actionable and s.observation.confidence >= CONTEXT_MIN_CONFIDENCE - 1e-6]  # float32: 0.7 is 0.6999…
        return keep[-CONTEXT_MAX:]

    async def _on_response(self, resp: video_pb2.AnalyzeResponse) -> None:
        kind = resp.WhichOneof("msg")
        if kind == "observation":
            obs = resp.observation
            self.seen.append(Seen(self.clock.monotonic(), obs))
            self.observations += 1
            log.info("observation", extra={"observation_id": obs.id, "type": obs.type,
                                           "confidence": round(obs.confidence, 2)})
            await self._record(observation=obs)  # the interview's event stream (failures logged there)
        elif kind == "problem":
            log.warning("video problem", extra={"code": resp.problem.code, "detail": resp.problem.message[:200]})
        elif kind == "stats":
            self.stats = resp.stats
            log.info("video stats", extra={"frames_received": resp.stats.frames_received,
                                           "frames_analyzed": resp.stats.frames_analyzed,
                                           "observations": resp.stats.observations_sent,
                                           "provider": resp.stats.provider, "est_usd": resp.stats.est_usd})
            await self._record(video_stats=resp.stats)  # counters and cost, in the interview's events

    # ---- the stream ----

    def _first(self) -> list[video_pb2.AnalyzeRequest]:
        return [video_pb2.AnalyzeRequest(config=video_pb2.VideoConfig(
            consent=self._consent(), sampling=self.sampling, role=self.interview.role,
            stream_id=self.stream_id))]

    async def run(self) -> None:
        """Owned by the session. Waits for consent, then keeps one Analyze stream open for the
        rest of the session; never raises (but for cancellation): video failing is not the
        interview failing."""
        try:
            await self._run()
        finally:
            self._ended.set()

    async def _run(self) -> None:
        if self.stub is None:
            return  # no video service configured: rates stay 0, frames are refused
        await self._wanted.wait()
        delays = self._retry.delays()
        while not self._closing:
            self.stream = ReopeningStream("video", self.stub.Analyze, self._first, self._on_response,
                                          max_pending=MAX_PENDING_FRAMES, backoff=self._retry)
            try:
                await self.stream.run()
                return  # closed at the session's end
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.error("video stream refused; carrying on without video for now",
                          extra={"code": exc.code().name, "detail": (exc.details() or "")[:200]})
            except Exception:
                log.exception("video stream failed; carrying on without video for now")
            self.stream = None
            if not self._closing:
                await asyncio.sleep(next(delays, self._retry.cap_s))

    async def close(self, timeout_s: float = STATS_AT_END_S) -> None:
        """Half-close at the session's end and wait (bounded) for the video service's stats, which
        go into the interview's events; a stream that is down or never opened has none to wait for."""
        self._closing = True
        if self.frames_in:
            log.info("video frames", extra={"frames_in": self.frames_in, "refused": self.frames_refused,
                                            "dropped_service_down_or_behind": self.frames_dropped,
                                            "observations": self.observations})
        stream = self.stream
        if stream is None or not stream.connected.is_set():
            return
        stream.close()
        try:
            async with asyncio.timeout(timeout_s):
                await self._ended.wait()
        except TimeoutError:
            log.warning("no video stats at session end", extra={"waited_s": timeout_s})
