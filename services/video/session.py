"""One Video.Analyze stream: consent, rate sampling, decoding, change detection, the provider (with
fallback), the guardrail, and the stream's stats.

Order of checks for a frame, cheapest first and nothing decoded before it is needed: source and
consent, byte cap, rate (by capture time) -> then, off the loop, header and pixel cap, decode and
scale, change detection. Pixels never leave this process and are not kept past their analysis."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass

from interview.v1 import common_pb2, video_pb2
from services.common.fallback import ProviderChain
from services.video import frames
from services.video.change import ChangeDetector
from services.video.cost import CostMeter
from services.video.guardrail import Guardrail
from services.video.observations import Candidate, Ids, to_proto
from services.video.providers.base import Frame, Provider, StreamAnalyser, StreamContext
from services.video.sampling import RateSampler

log = logging.getLogger("video")

SCREEN, CAMERA = common_pb2.VIDEO_SOURCE_SCREEN, common_pb2.VIDEO_SOURCE_CAMERA
INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 3, 7, 8
_NAMES = {SCREEN: "screen", CAMERA: "camera"}


@dataclass(frozen=True)
class Limits:
    max_frame_bytes: int
    max_frame_pixels: int
    drain_timeout_s: float = 15.0
    queue_frames: int = 4       # sampled frames waiting for decode, per stream
    out_messages: int = 256     # responses waiting for the client


class StreamSession:
    def __init__(self, config: video_pb2.VideoConfig, chain: ProviderChain[Provider], first: str,
                 executor: Executor, limits: Limits, stream_id: str, *, sampling_free: bool = False):
        self.config = config
        self.chain = chain
        self.executor = executor
        self.limits = limits
        self.stream_id = stream_id
        self.sampling_free = sampling_free  # the CLI: every frame analysed, no rate or change skipping
        self.consent = {SCREEN: config.consent.screen, CAMERA: config.consent.camera}
        self.mode = config.sampling or video_pb2.SAMPLING_NORMAL
        self.sampler = RateSampler(self.mode)
        self.detector = ChangeDetector()
        self.guardrail = Guardrail()
        self.cost = CostMeter()
        self.ids = Ids(stream_id)
        self.stats = video_pb2.VideoStats()
        self.out: asyncio.Queue[video_pb2.AnalyzeResponse | None] = asyncio.Queue(limits.out_messages)
        self.out_dropped = 0
        self._queue: collections.deque[common_pb2.VideoFrame] = collections.deque()
        self._queued = asyncio.Event()
        self._last_problem: dict[tuple[int, str], float] = {}
        self._last_screen: Frame | None = None
        self._received_ms: collections.OrderedDict[int, int] = collections.OrderedDict()  # capture -> wall
        self.provider_name = first
        self.analyser: StreamAnalyser | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._pipeline(), name=f"video-pipeline-{self.stream_id}"),
                       asyncio.create_task(self._provider_loop(), name=f"video-provider-{self.stream_id}")]

    async def finish(self) -> None:
        """The client half-closed: analyse what is pending, then send the stats."""
        deadline = time.monotonic() + self.limits.drain_timeout_s
        while (self._queue or self._decoding) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.analyser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.analyser.drain(), max(0.1, deadline - time.monotonic()))
        await self.out.put(video_pb2.AnalyzeResponse(stats=self.final_stats()))
        await self.out.put(None)

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._queue.clear()
        self._last_screen = None

    def final_stats(self) -> video_pb2.VideoStats:
        s = self.stats
        self.cost.fill(s)
        s.provider = self.provider_name
        s.observations_sent = self.guardrail.passed
        for reason, n in self.guardrail.dropped.items():
            s.observations_dropped[reason] = n
        if self.out_dropped:
            s.observations_dropped["client_too_slow"] = self.out_dropped
        return s

    # ---- requests --------------------------------------------------------------------------
    async def handle(self, req: video_pb2.AnalyzeRequest) -> None:
        kind = req.WhichOneof("msg")
        if kind == "frame":
            await self._frame(req.frame)
        elif kind == "update":
            self._update(req.update)
        elif kind == "config":
            await self._problem(INVALID_ARGUMENT, "config may only be sent once, as the first message; "
                                "use update to change sampling or consent", "config")

    def _update(self, u: video_pb2.VideoModeUpdate) -> None:
        if u.sampling:
            self.mode = u.sampling
            self.sampler.set_mode(u.sampling)
            if self.analyser is not None:
                self.analyser.set_mode(u.sampling)
        if u.HasField("consent"):
            for source, allowed in ((SCREEN, u.consent.screen), (CAMERA, u.consent.camera)):
                if self.consent[source] and not allowed:
                    self._withdraw(source)
                self.consent[source] = allowed

    def _withdraw(self, source: int) -> None:
        """Consent withdrawn: stop at once and forget every frame of that source."""
        kept = [f for f in self._queue if f.source != source]
        self.stats.frames_dropped_withdrawn += len(self._queue) - len(kept)
        self._queue = collections.deque(kept)
        self.sampler.forget(source)
        if source == SCREEN:
            self.detector.reset()
            self._last_screen = None
        if self.analyser is not None:
            self.analyser.drop_source(source)
        log.info("consent withdrawn", extra={"source": _NAMES[source], "stream": self.stream_id})

    async def _frame(self, f: common_pb2.VideoFrame) -> None:
        self.stats.frames_received += 1
        if f.source not in self.consent:
            await self._problem(INVALID_ARGUMENT, "frame source must be VIDEO_SOURCE_CAMERA or VIDEO_SOURCE_SCREEN",
                                "frame.source")
            return
        if not self.consent[f.source]:
            self.stats.frames_refused_consent += 1
            await self._problem(PERMISSION_DENIED, f"no consent to analyse the {_NAMES[f.source]}: frame refused "
                                "unread (send update.consent when the candidate agrees)", "frame.source", f.source)
            return
        if len(f.jpeg) > self.limits.max_frame_bytes:
            self.stats.frames_oversized += 1
            await self._problem(RESOURCE_EXHAUSTED, f"frame is {len(f.jpeg)} bytes, over the cap of "
                                f"{self.limits.max_frame_bytes}; send smaller JPEGs (e.g. 1280 px, quality 80)",
                                "frame.jpeg")
            return
        if not self.sampling_free and not self.sampler.admit(f.source, f.time_ms):
            self.stats.frames_skipped_rate += 1
            return
        self.stats.frames_sampled += 1
        self._received_ms[f.time_ms] = int(time.time() * 1000)
        if len(self._received_ms) > 64:
            self._received_ms.popitem(last=False)
        if len(self._queue) >= self.limits.queue_frames:  # decoding fell behind: the oldest goes
            self._queue.popleft()
            self.stats.frames_sampled -= 1  # counted as skipped by rate after all
            self.stats.frames_skipped_rate += 1
        self._queue.append(f)
        self._queued.set()

    # ---- pipeline (decode off the loop, change detection, hand to the provider) -------------
    _decoding = False

    async def _pipeline(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                f = self._queue.popleft()
                self._decoding = True
                try:
                    try:
                        decoded, change = await loop.run_in_executor(self.executor, self._decode, f)
                    except frames.FrameError as exc:
                        if exc.code == RESOURCE_EXHAUSTED:
                            self.stats.frames_oversized += 1
                        else:
                            self.stats.frames_invalid += 1
                        await self._problem(exc.code, exc.message, "frame.jpeg")
                        continue
                    except Exception as exc:  # whatever a hostile JPEG does, the stream lives on
                        self.stats.frames_invalid += 1
                        log.warning("frame could not be decoded", extra={"error": type(exc).__name__})
                        await self._problem(INVALID_ARGUMENT, f"JPEG could not be decoded ({type(exc).__name__})",
                                            "frame.jpeg")
                        continue
                finally:
                    self._decoding = False
                if not self.consent.get(f.source):  # withdrawn while it was decoding
                    self.stats.frames_dropped_withdrawn += 1
                    continue
                if change is not None and not change.changed:
                    self.stats.frames_skipped_unchanged += 1
                    if self.analyser is not None:  # the offline analyser may re-read a settled screen
                        self.analyser.still(Frame(f.source, f.time_ms, decoded, change, f.jpeg))
                    continue
                self.stats.frames_analyzed += 1
                frame = Frame(f.source, f.time_ms, decoded, change, f.jpeg)
                if f.source == SCREEN:
                    self._last_screen = frame
                if self.analyser is not None:
                    self.analyser.submit(frame)

    def _decode(self, f: common_pb2.VideoFrame) -> tuple[frames.Decoded, object]:
        decoded = frames.decode(f.jpeg, f.source, self.limits.max_frame_pixels)
        change = self.detector.check(decoded.gray) if f.source == SCREEN and not self.sampling_free else None
        return decoded, change

    # ---- provider with fallback ------------------------------------------------------------
    async def _provider_loop(self) -> None:
        start: str | None = self.provider_name
        while True:
            name, provider, breaker = next(self.chain.candidates(start))
            self.provider_name = name
            self.cost.tokens_per_frame = getattr(provider, "tokens_per_frame", self.cost.tokens_per_frame)
            self.cost.window_tokens = getattr(provider, "context_cap_tokens", self.cost.window_tokens)
            self.analyser = provider.open(self._context())
            if self._last_screen is not None:
                self.analyser.submit(self._last_screen)
            try:
                await self.analyser.run()
                return
            except asyncio.CancelledError:
                breaker.release()
                raise
            except Exception as exc:  # any provider failure: fall back, the stream goes on
                breaker.record_failure(str(exc))
                names = self.chain.names
                if names.index(name) == len(names) - 1:
                    log.exception("last video provider failed", extra={"provider": name})
                    raise
                start = names[names.index(name) + 1]
                self.stats.fell_back = True
                self.stats.fallback_reason = f"{name}: {exc}"[:200]
                log.warning("video provider failed; falling back",
                            extra={"provider": name, "to": start, "reason": str(exc)[:200]})
                await self.out.put(video_pb2.AnalyzeResponse(provider_event=common_pb2.ProviderEvent(
                    kind=common_pb2.ProviderEvent.FALLBACK, provider=start, from_provider=name,
                    reason=str(exc)[:200])))

    def _context(self) -> StreamContext:
        return StreamContext(self.stream_id, self.config.role, self.mode, self._emit,
                             on_model_frame=self._model_frame, on_model_turn=self._model_turn,
                             raw_output=self._raw_output)

    def _model_frame(self, _mode: int) -> None:
        self.cost.frame_sent(self.mode)

    def _model_turn(self, _mode: int, prompt_tokens: int, output_tokens: int) -> None:
        self.stats.model_turns += 1
        self.cost.turn(self.mode, prompt_tokens, output_tokens)

    def _raw_output(self, text: str, source: int, time_ms: int) -> None:
        for c in self.guardrail.parse_model_output(text, source, time_ms):
            self._emit(c)

    def _emit(self, c: Candidate) -> None:
        if not self.consent.get(c.source, False):
            self.guardrail.dropped["no_consent"] += 1
            return
        ok = self.guardrail.check(c)
        if ok is None:
            return
        # Observation.time: when the frame it describes reached the service (wall clock), so a
        # consumer can place it on the interview's timeline and measure the analysis latency.
        wall = self._received_ms.get(ok.time_ms) or int(time.time() * 1000)
        msg = video_pb2.AnalyzeResponse(observation=to_proto(ok, self.ids.next(), wall))
        try:
            self.out.put_nowait(msg)
        except asyncio.QueueFull:
            self.out_dropped += 1

    async def _problem(self, code: int, message: str, field: str, source: int = 0) -> None:
        """In-band Problem; the same one repeated (a camera sent without consent at 15 fps) at most
        once a second. Every frame is counted in the stats regardless."""
        now = time.monotonic()
        key = (code, message)
        if now - self._last_problem.get(key, -1e9) < 1.0:
            return
        self._last_problem[key] = now
        await self.out.put(video_pb2.AnalyzeResponse(problem=common_pb2.Problem(code=code, message=message, field=field)))


def counters(session: StreamSession) -> Counter[str]:
    """The stream's counters as a flat dict (for logs: counts only, never content)."""
    s = session.final_stats()
    return Counter({f.name: v for f, v in s.ListFields() if isinstance(v, (int, float)) and not isinstance(v, bool)})
