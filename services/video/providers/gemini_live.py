"""Gemini Live (google-genai `client.aio.live.connect`): one live session per stream, TEXT replies.

Frames go in as realtime video input and never start a model turn on their own: an analysis tick
(every `tick_s` in SCREEN_FOCUS, x2 in NORMAL, x4 in LOW; sooner on a significant screen change,
never closer than `min_turn_gap_s`) sends a short turn asking for JSON observations, and only when
new frames went in since the last turn. Long interviews: context window compression (sliding
window) and session resumption; a GoAway or a dropped socket reconnects with the latest handle and
backoff. Quota, auth or exhausted reconnects raise ProviderFailed: the stream falls back to offline.
The model's text is parsed and filtered by the session's guardrail like any provider's output."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Any

from google import genai
from google.genai import errors, types

from interview.v1 import common_pb2, video_pb2
from services.common.retry import Backoff
from services.video import frames
from services.video.cost import TOKENS_PER_FRAME, TOKENS_PER_FRAME_LOW
from services.video.observations import ObsType
from services.video.providers.base import Frame, Provider, ProviderFailed, StreamAnalyser, StreamContext

log = logging.getLogger("video.gemini")
SCREEN = common_pb2.VIDEO_SOURCE_SCREEN
TICK_FACTOR = {video_pb2.SAMPLING_SCREEN_FOCUS: 1.0, video_pb2.SAMPLING_NORMAL: 2.0, video_pb2.SAMPLING_LOW: 4.0}
TURN_PROMPT = "Analysis tick: report what is new in the frames since your last answer, as the JSON object."
TURN_PROMPT_TOKENS = 20

SYSTEM_INSTRUCTION = """You watch the shared screen and, if allowed, the camera of a candidate in a \
technical interview for the role: {role}. Report only specific, verifiable observations:
- what is on the shared screen: code and its structure (language, functions, data structures), a \
terminal and its error, a browser (search results, documentation, an AI chat), a diagram;
- screen activity: typing, scrolling, switching windows (what changed, not why);
- camera: covered, dark or frozen; observable behaviour stated as behaviour ("eyes moving line by \
line across something below the camera for ~20 s"), never as intent.
Never mention emotions, mood, nervousness, confidence, honesty or cheating, personality, appearance, \
clothing, age, gender, ethnicity or any other personal attribute; refer to the person only as "the \
candidate". Never read out secrets, keys, passwords or e-mail addresses.
Answer every analysis tick with only this JSON, no prose: {{"observations": [{{"type": one of \
{types}, "detail": "at most 200 characters", "confidence": 0.0-1.0, "source": "screen" or \
"camera"}}]}}. Use an empty list when nothing new is visible."""


class GeminiLiveProvider(Provider):
    name = "gemini"

    def __init__(self, api_key: str, *, model: str, base_url: str = "", ssl_context: ssl.SSLContext | None = None,
                 tick_s: float = 10.0, min_turn_gap_s: float = 3.0, frame_interval_s: float = 2.0, turn_timeout_s: float = 15.0,
                 window_tokens: int = 2000, trigger_tokens: int = 4000, low_resolution: bool = True,
                 backoff: Backoff = Backoff(initial_s=0.5, cap_s=8.0, attempts=5)):
        options: dict[str, Any] = {}
        if base_url:
            options["base_url"] = base_url
        if ssl_context is not None:
            options["async_client_args"] = {"ssl": ssl_context}
        self.client = genai.Client(api_key=api_key, http_options=types.HttpOptions(**options))
        self.model = model
        self.tick_s = tick_s
        self.min_turn_gap_s = min_turn_gap_s
        self.frame_interval_s = frame_interval_s
        self.turn_timeout_s = turn_timeout_s
        self.window_tokens = window_tokens
        self.trigger_tokens = trigger_tokens
        self.low_resolution = low_resolution
        self.tokens_per_frame = TOKENS_PER_FRAME_LOW if low_resolution else TOKENS_PER_FRAME
        self.context_cap_tokens = trigger_tokens  # compression keeps the billed context below this
        self.backoff = backoff

    @classmethod
    def from_config(cls, cfg: Any) -> "GeminiLiveProvider":
        return cls(cfg.gemini_api_key, model=cfg.gemini_model, base_url=cfg.gemini_base_url,
                   tick_s=cfg.gemini_tick_s, min_turn_gap_s=cfg.gemini_min_turn_gap_s,
                   frame_interval_s=cfg.gemini_frame_interval_s,
                   turn_timeout_s=cfg.gemini_turn_timeout_s, window_tokens=cfg.gemini_window_tokens,
                   trigger_tokens=cfg.gemini_trigger_tokens, low_resolution=cfg.gemini_low_resolution)

    def open(self, ctx: StreamContext) -> "GeminiLiveAnalyser":
        return GeminiLiveAnalyser(self, ctx)

    def connect_config(self, role: str, handle: str | None) -> types.LiveConnectConfig:
        return types.LiveConnectConfig(
            response_modalities=[types.Modality.TEXT],
            system_instruction=SYSTEM_INSTRUCTION.format(role=role or "software engineer",
                                                         types=", ".join(t.value for t in ObsType)),
            media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW if self.low_resolution else None,
            context_window_compression=types.ContextWindowCompressionConfig(
                trigger_tokens=self.trigger_tokens,
                sliding_window=types.SlidingWindow(target_tokens=self.window_tokens)),
            session_resumption=types.SessionResumptionConfig(handle=handle),
        )

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aio.aclose()


def _fatal(exc: BaseException) -> bool:
    """Quota and auth errors: reconnecting will not help, fall back now."""
    text = str(exc).lower()
    code = exc.code if isinstance(exc, errors.APIError) else None
    return code in (401, 403, 429, 1008) or any(w in text for w in ("quota", "resource_exhausted", "api key",
                                                                    "permission", "unauthenticated"))


class GeminiLiveAnalyser(StreamAnalyser):
    def __init__(self, provider: GeminiLiveProvider, ctx: StreamContext):
        self.p = provider
        self.ctx = ctx
        self.mode = ctx.mode
        self.handle: str | None = None
        self._pending: dict[int, Frame] = {}  # newest unsent frame per source
        self._frame_ready = asyncio.Event()
        self._urgent = False  # a significant screen change: analyse soon
        self._unanalysed = 0  # frames sent since the last turn
        self._last_turn = -1e9
        self._last_sent: dict[int, float] = {}  # source -> when its last frame went to the model
        self._turn_open: float | None = None  # when the turn in flight started
        self._text: list[str] = []
        self._last_frame_ms = 0
        self._last_source = SCREEN
        self.connects = 0
        self.resumes = 0

    # ---- StreamAnalyser ----
    def submit(self, frame: Frame) -> None:
        self._pending[frame.source] = frame
        if frame.change is not None and frame.change.significant:
            self._urgent = True
        self._frame_ready.set()

    def set_mode(self, mode: int) -> None:
        self.mode = mode

    def drop_source(self, source: int) -> None:
        self._pending.pop(source, None)

    async def run(self) -> None:
        delays = self.p.backoff.delays()
        while True:
            try:
                config = self.p.connect_config(self.ctx.role, self.handle)
                async with self.p.client.aio.live.connect(model=self.p.model, config=config) as session:
                    self.connects += 1
                    if self.handle:
                        self.resumes += 1
                    delays = self.p.backoff.delays()  # connected: a later drop starts the backoff afresh
                    try:
                        await self._session(session)
                    except asyncio.CancelledError:  # the stream ended: close the socket cleanly (1000)
                        with contextlib.suppress(Exception):
                            await asyncio.shield(session.close())
                        raise
                    log.info("gemini live: go away, resuming", extra={"resumable": bool(self.handle)})
                    continue
            except asyncio.CancelledError:
                raise
            except ProviderFailed:
                raise
            except Exception as exc:
                if _fatal(exc):
                    raise ProviderFailed(f"gemini live refused the session: {exc}") from exc
                delay = next(delays, None)
                if delay is None:
                    raise ProviderFailed(f"gemini live: reconnects exhausted: {exc}") from exc
                log.warning("gemini live connection lost; reconnecting",
                            extra={"delay_s": round(delay, 2), "error": str(exc)[:200], "resumable": bool(self.handle)})
                self._turn_open = None
                self._text.clear()
                await asyncio.sleep(delay)

    async def drain(self) -> None:
        """Half-close: the frames sent since the last turn still get one analysis."""
        deadline = time.monotonic() + self.p.turn_timeout_s
        if self._pending or self._unanalysed:
            self._urgent = True
            self._last_turn = -1e9
            self._frame_ready.set()
        while (self._pending or self._unanalysed or self._turn_open is not None) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    # ---- one connection ----
    async def _session(self, session: Any) -> None:
        """Send and receive until GoAway (returns) or an error (raises)."""
        receiver = asyncio.create_task(self._receive(session))
        try:
            while not receiver.done():
                await self._send_frames(session)
                if self._turn_due():
                    await session.send_client_content(
                        turns=types.Content(role="user", parts=[types.Part(text=TURN_PROMPT)]), turn_complete=True)
                    self._turn_open = self._last_turn = time.monotonic()
                    self._unanalysed = 0
                    self._urgent = False
                if self._turn_open is not None and time.monotonic() - self._turn_open > self.p.turn_timeout_s:
                    raise TimeoutError(f"no turnComplete within {self.p.turn_timeout_s} s")
                self._frame_ready.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._frame_ready.wait(), 0.25)  # a frame, or re-check the tick
            receiver.result()  # GoAway returns normally; errors raise here
        finally:
            receiver.cancel()
            with contextlib.suppress(BaseException):
                await receiver

    def _turn_due(self) -> bool:
        if self._turn_open is not None or not self._unanalysed:
            return False
        since = time.monotonic() - self._last_turn
        if self._urgent and since >= self.p.min_turn_gap_s:
            return True
        return since >= self.p.tick_s * TICK_FACTOR.get(self.mode, 2.0)

    async def _send_frames(self, session: Any) -> None:
        """The newest frame per source, at most one per `frame_interval_s` (a significant screen
        change, or a frame an analysis is waiting for, goes at once): typing changes almost every
        sampled frame, and each frame sent is billed again on every later turn."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        for source in list(self._pending):
            frame = self._pending.get(source)
            if frame is None:
                continue
            significant = frame.change is not None and frame.change.significant
            tick = now - self._last_turn >= self.p.tick_s * TICK_FACTOR.get(self.mode, 2.0)
            if source != SCREEN and not (tick or self._urgent):
                continue  # the camera (no change detection) goes in once per analysis, its newest frame
            if not (significant or self._urgent or tick) and \
                    now - self._last_sent.get(source, -1e9) < self.p.frame_interval_s:
                continue  # kept: it goes later unless a newer one replaces it
            del self._pending[source]
            self._last_sent[source] = now
            data = frame.jpeg
            if frame.decoded.scaled or not data:
                data = await loop.run_in_executor(None, frames.encode, frame.decoded.image)
            await session.send_realtime_input(video=types.Blob(data=data, mime_type="image/jpeg"))
            self.ctx.on_model_frame(self.mode)
            self._unanalysed += 1
            self._last_frame_ms, self._last_source = frame.time_ms, frame.source

    async def _receive(self, session: Any) -> None:
        while True:
            async for msg in session.receive():
                if msg.session_resumption_update and msg.session_resumption_update.resumable \
                        and msg.session_resumption_update.new_handle:
                    self.handle = msg.session_resumption_update.new_handle
                if msg.go_away is not None:
                    return  # the server will close soon: reconnect with the handle
                content = msg.server_content
                if content is None:
                    continue
                if content.model_turn and content.model_turn.parts:
                    self._text.extend(p.text for p in content.model_turn.parts if p.text)
                if content.turn_complete:
                    text = "".join(self._text)
                    self._text.clear()
                    self._turn_open = None
                    usage = msg.usage_metadata
                    out_tokens = (usage.response_token_count if usage and usage.response_token_count
                                  else max(1, len(text) // 4))
                    self.ctx.on_model_turn(self.mode, TURN_PROMPT_TOKENS, out_tokens)
                    self.ctx.raw_output(text, self._last_source, self._last_frame_ms)
