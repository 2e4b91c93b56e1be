"""Configuration of the video service (env vars prefixed VIDEO_; `python -m services.video env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env
from services.common.server import MB, ServerSettings


@dataclass(frozen=True)
class VideoConfig:
    server: ServerSettings
    providers: tuple[str, ...] = env(("gemini", "offline"), help="provider chain in fallback order "
                                     "(gemini is skipped when GEMINI_API_KEY is unset)")
    max_frame_bytes: int = env(2 * MB, min=1024, help="larger JPEG frames get an in-band RESOURCE_EXHAUSTED "
                               "Problem (keep below VIDEO_MAX_MESSAGE_BYTES)")
    max_frame_pixels: int = env(3840 * 2160, min=64 * 64, help="frames with more pixels (from the JPEG header) "
                                "are refused before decoding")
    decode_workers: int = env(2, min=1, max=32, help="threads decoding and scaling JPEG frames")
    ocr_workers: int = env(1, min=1, max=32, help="tesseract processes running at once (all streams)")
    ocr_min_interval_s: float = env(3.0, min=0.0, help="a stream's screen is OCR'd at most this often")
    screen_settle_s: float = env(2.0, min=0.0, help="offline: a changed screen that then stays still this long is "
                                 "OCR'd once more (a WebRTC encoder sharpens a still screen over its first "
                                 "frames); 0 = off")
    ocr_timeout_s: float = env(10.0, min=0.5, help="a tesseract run taking longer is killed")
    ocr_nice: int = env(10, min=0, max=19, help="scheduling niceness of tesseract (low priority)")
    camera_dark_luma: float = env(20.0, min=0, max=255, help="mean grey level under which the camera counts as dark or covered")
    camera_frozen_s: float = env(60.0, min=1, help="camera unchanged this long -> a camera_state observation")
    gemini_api_key: str = env("", name="GEMINI_API_KEY", secret=True, help="Gemini API key")
    gemini_base_url: str = env("", help="Gemini API base URL override (proxies, tests); empty = Google's")
    gemini_model: str = env("gemini-live-2.5-flash-preview", help="Gemini Live model id (TEXT responses)")
    gemini_low_resolution: bool = env(True, help="send frames at media_resolution LOW (66 instead of 258 tokens)")
    gemini_tick_s: float = env(10.0, min=1.0, help="seconds between analysis turns in SCREEN_FOCUS "
                               "(NORMAL x2, LOW x4); a significant screen change starts one sooner")
    gemini_frame_interval_s: float = env(2.0, min=0.0, help="newest changed frame sent to Gemini at most this often "
                                         "per source (a significant change goes at once)")
    gemini_min_turn_gap_s: float = env(3.0, min=0.0, help="shortest gap between two analysis turns")
    gemini_turn_timeout_s: float = env(15.0, min=1.0, help="a turn without turnComplete this long reconnects the session "
                                   "(with backoff; exhausted reconnects fall back to offline)")
    # Every turn bills the whole context, so a small window is the main cost lever; screen analysis
    # needs the last minutes of frames, not the interview (66 tokens a frame at LOW resolution).
    gemini_window_tokens: int = env(2000, min=500, help="context window compression: sliding window target")
    gemini_trigger_tokens: int = env(4000, min=1000, help="context window compression: trigger (the most a turn bills)")
    breaker_failures: int = env(2, min=1, help="consecutive provider failures that open its breaker")
    breaker_cooldown_s: float = env(60.0, min=0, help="how long an open breaker skips its provider")
