"""Tesseract OCR in memory: the image goes to `tesseract stdin stdout` through a pipe, text comes
back through a pipe; nothing is written to disk. Runs niced, a bounded number at a time.

Preprocessing for shared screens (mostly dark-theme editors): grayscale, invert a dark
background to dark-on-light, stretch contrast, upscale 2x (a 1280 px screen's code is ~10 px
tall, below what tesseract reads well); afterwards, strip the line-number gutter from the text."""
from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
from concurrent.futures import Executor

import numpy as np
from PIL import Image, ImageOps

_GUTTER = re.compile(r"^\s*\d{1,4}(?:\s+|$)")


def rows_from_tsv(tsv: str) -> str:
    """Tesseract's word boxes -> text lines by position. Its layout analysis may put a keyword in a
    different block than the name after it ("def" | "two_sum(...)"); rows by vertical position
    keep a line of code together. A column of right-aligned numbers (a line-number gutter) becomes
    each row's first token, which strip_gutter removes."""
    words: list[tuple[int, int, int, int, str]] = []
    for line in tsv.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
            continue
        left, top, width, height = (int(v) for v in cols[6:10])
        words.append((top + height // 2, left, height, left + width, cols[11]))
    words.sort()
    rows: list[list[tuple[int, int, int, int, str]]] = []
    for w in words:
        if rows and abs(w[0] - rows[-1][0][0]) <= max(4, rows[-1][0][2] // 2):
            rows[-1].append(w)
        else:
            rows.append([w])
    gutter = _gutter_edge(words)
    lines = []
    for row in rows:
        row.sort(key=lambda w: w[1])
        if gutter is not None:  # the gutter number first, what is left of it (a sidebar) dropped
            nums = [w for w in row if w[4].isdigit() and abs(w[3] - gutter) <= 10]
            if nums:
                row = nums[:1] + [w for w in row if w[1] > nums[0][3]]
        lines.append(" ".join(w[4] for w in row))
    return "\n".join(lines)


def _gutter_edge(words: list[tuple[int, int, int, int, str]]) -> int | None:
    """Right edge shared by >= 3 numeric words (line numbers are right-aligned), if any."""
    edges: dict[int, int] = {}
    for w in words:
        if w[4].isdigit() and len(w[4]) <= 4:
            edges[w[3] // 8] = edges.get(w[3] // 8, 0) + 1
    if not edges:
        return None
    bucket, count = max(edges.items(), key=lambda kv: kv[1])
    return bucket * 8 + 4 if count >= 3 else None


def preprocess(img: Image.Image) -> bytes:
    """RGB screen image -> PGM bytes ready for tesseract (CPU-bound: run in an executor)."""
    gray = img.convert("L")
    if float(np.asarray(gray).mean()) < 128:
        gray = ImageOps.invert(gray)
    gray = ImageOps.autocontrast(gray, cutoff=1)
    if max(gray.size) < 2000:
        gray = gray.resize((gray.width * 2, gray.height * 2), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    gray.save(buf, "PPM")  # uncompressed: cheaper than PNG, read by leptonica from stdin
    return buf.getvalue()


def strip_gutter(text: str) -> tuple[str, tuple[int, int]]:
    """Drop line numbers (a column of digits) from OCR text; returns the text and the first and
    last line numbers seen ((0, 0) without a gutter)."""
    lines = text.splitlines()
    numbered = [ln for ln in lines if _GUTTER.match(ln)]
    content = [ln for ln in lines if ln.strip()]
    if not content or len(numbered) < max(3, 0.4 * len(content)):
        return text, (0, 0)
    numbers: list[int] = []
    out = []
    for ln in lines:
        m = _GUTTER.match(ln)
        if m:
            numbers.append(int(m.group(0)))
            ln = ln[m.end():]
        if ln.strip() or not m:
            out.append(ln)
    return "\n".join(out), (min(numbers), max(numbers))


class Tesseract:
    """Runs tesseract processes, at most `workers` at once across all streams."""

    def __init__(self, executor: Executor, *, workers: int = 1, timeout_s: float = 10.0, nice: int = 10):
        self.executor = executor
        self.timeout_s = timeout_s
        self._sem = asyncio.Semaphore(workers)
        self._cmd = ["tesseract", "stdin", "stdout", "--psm", "3", "-l", "eng", "tsv"]
        if nice and shutil.which("nice"):
            self._cmd = ["nice", "-n", str(nice), *self._cmd]
        self._env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one core per OCR run
        self.runs = 0

    async def read(self, img: Image.Image) -> str:
        data = await asyncio.get_running_loop().run_in_executor(self.executor, preprocess, img)
        async with self._sem:
            proc = await asyncio.create_subprocess_exec(
                *self._cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self._env)
            try:
                out, _err = await asyncio.wait_for(proc.communicate(data), self.timeout_s)
            except BaseException:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                raise
            self.runs += 1
        if proc.returncode != 0:
            raise RuntimeError(f"tesseract exited {proc.returncode}")
        return rows_from_tsv(out.decode("utf-8", "replace"))

    @staticmethod
    async def available() -> bool:
        if shutil.which("tesseract") is None:
            return False
        proc = await asyncio.create_subprocess_exec("tesseract", "--version", stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        return await proc.wait() == 0
