"""`python -m services.video analyze IMAGE_OR_DIR [--source screen|camera] [--provider offline|gemini]`:
one JSON observation per line, through the service's own analysis, guardrail and redaction (no
rate sampling or change detection: every image is analysed)."""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from interview.v1 import common_pb2, video_pb2
from services.common import config
from services.common.cli import Command
from services.video.config import VideoConfig
from services.video.service import make_servicer

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_SIDE = 2560  # larger images are scaled down first (the service scales to 1280 anyway)
SOURCES = {"screen": common_pb2.VIDEO_SOURCE_SCREEN, "camera": common_pb2.VIDEO_SOURCE_CAMERA}


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="an image (JPEG, PNG, ...) or a directory of images")
    p.add_argument("--source", choices=tuple(SOURCES), default="screen")
    p.add_argument("--provider", choices=("offline", "gemini"), default="offline")


class Unreadable(Exception):
    pass


def as_jpeg(path: Path) -> bytes:
    """The file as JPEG bytes (a PNG screenshot is re-encoded in memory, like a browser would)."""
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            if img.format == "JPEG" and max(img.size) <= MAX_SIDE:
                img.verify()
                return data
            img = img.convert("RGB")
            img.thumbnail((MAX_SIDE, MAX_SIDE))  # a 5K screenshot arrives as a browser would send it
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=90)
            return buf.getvalue()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        reason = "unknown or damaged image format" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise Unreadable(f"{path}: not a readable image ({reason}); use a JPEG or PNG file") from None


def _images(root: Path) -> list[Path]:
    if root.is_dir():
        return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [root]


async def _analyze(args: argparse.Namespace) -> int:
    root = Path(args.path)
    if not root.exists():
        print(f"error: {root}: no such file or directory", file=sys.stderr)
        return 2
    paths = _images(root)
    if not paths:
        print(f"error: {root}: no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})", file=sys.stderr)
        return 2
    cfg = config.load_or_exit(VideoConfig, "video")
    if args.provider == "gemini" and not cfg.gemini_api_key:
        print("error: --provider gemini needs GEMINI_API_KEY", file=sys.stderr)
        return 2
    servicer, providers, executor = make_servicer(cfg, only=args.provider)
    source = SOURCES[args.source]
    failed = False
    try:
        for path in paths:
            try:
                jpeg = as_jpeg(path)
            except Unreadable as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed = True
                continue
            failed |= not await _one(servicer, path, jpeg, source, args)
    finally:
        for provider in providers:
            await provider.aclose()
        executor.shutdown(wait=False, cancel_futures=True)
    return 2 if failed else 0


async def _one(servicer, path: Path, jpeg: bytes, source: int, args: argparse.Namespace) -> bool:
    async def requests() -> AsyncIterator[video_pb2.AnalyzeRequest]:
        yield video_pb2.AnalyzeRequest(config=video_pb2.VideoConfig(
            consent=common_pb2.VideoConsent(screen=True, camera=True),
            sampling=video_pb2.SAMPLING_SCREEN_FOCUS, provider=args.provider, stream_id=path.stem))
        yield video_pb2.AnalyzeRequest(frame=common_pb2.VideoFrame(jpeg=jpeg, source=source, time_ms=0))

    ok = True
    async for r in servicer.analyze_local(requests(), sampling_free=True):
        kind = r.WhichOneof("msg")
        if kind == "observation":
            o = r.observation
            print(json.dumps({"file": str(path), "id": o.id, "type": o.type, "detail": o.detail,
                              "confidence": round(o.confidence, 2), "actionable": o.actionable,
                              "source": args.source}), flush=True)
        elif kind == "problem":
            print(f"error: {path}: {r.problem.message}", file=sys.stderr)
            ok = False
        elif kind == "provider_event":
            print(f"provider: {r.provider_event.from_provider} -> {r.provider_event.provider}: "
                  f"{r.provider_event.reason}", file=sys.stderr)
        elif kind == "stats" and r.stats.observations_dropped:
            print(f"{path}: dropped by the guardrail: {dict(r.stats.observations_dropped)}", file=sys.stderr)
    return ok


COMMANDS = [Command("analyze", "print JSON observations for an image or a directory of images", _configure,
                    lambda args: asyncio.run(_analyze(args)))]
