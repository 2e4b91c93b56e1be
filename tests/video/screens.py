"""Realistic screen-share frames rendered with Pillow: a 1920x1080 editor (title bar, tabs, file
tree, line-number gutter, status bar) in a dark or light theme, a terminal, a browser page.

Used by the OCR accuracy tests, the change-detection tests and the load/cost benchmark."""
from __future__ import annotations

import io
import keyword
import re
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@dataclass(frozen=True)
class Theme:
    name: str
    bg: tuple[int, int, int]
    fg: tuple[int, int, int]
    chrome: tuple[int, int, int]
    sidebar: tuple[int, int, int]
    gutter_fg: tuple[int, int, int]
    keyword: tuple[int, int, int]
    string: tuple[int, int, int]
    ident: tuple[int, int, int]
    comment: tuple[int, int, int]
    status: tuple[int, int, int]


DARK = Theme("dark", (30, 30, 30), (212, 212, 212), (50, 50, 51), (37, 37, 38), (133, 133, 133),
             (86, 156, 214), (206, 145, 120), (220, 220, 170), (106, 153, 85), (0, 122, 204))
LIGHT = Theme("light", (255, 255, 255), (0, 0, 0), (221, 221, 221), (243, 243, 243), (35, 120, 130),
              (0, 0, 255), (163, 21, 21), (121, 94, 38), (0, 128, 0), (0, 122, 204))

TWO_SUM = '''def two_sum(nums, target):
    """Return indices of the two numbers adding up to target."""
    seen = {}
    for index, value in enumerate(nums):
        complement = target - value
        if complement in seen:
            return [seen[complement], index]
        seen[value] = index
    return []


def test_two_sum():
    assert two_sum([2, 7, 11, 15], 9) == [0, 1]
    assert two_sum([3, 2, 4], 6) == [1, 2]
'''

LRU = '''class LRUCache:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries = OrderedDict()

    def get(self, key):
        if key not in self.entries:
            return -1
        self.entries.move_to_end(key)
        return self.entries[key]

    def put(self, key, value):
        self.entries[key] = value
        self.entries.move_to_end(key)
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
'''

MERGE = '''def merge_intervals(intervals):
    intervals.sort(key=lambda pair: pair[0])
    merged = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged
'''

SAMPLES = {"two_sum": TWO_SUM, "lru": LRU, "merge": MERGE}


@lru_cache(maxsize=8)
def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def identifiers(code: str) -> set[str]:
    """The identifiers a reader would name (>= 3 characters, not keywords)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    return {w for w in words if len(w) >= 3 and not keyword.iskeyword(w) and w not in ("True", "False", "None")}


def _token_color(token: str, theme: Theme) -> tuple[int, int, int]:
    if keyword.iskeyword(token):
        return theme.keyword
    if token[:1] in "\"'":
        return theme.string
    if token.startswith("#"):
        return theme.comment
    if re.match(r"[A-Za-z_]", token):
        return theme.ident
    return theme.fg


def editor(code: str, theme: Theme = DARK, *, gutter: bool = True, filename: str = "solution.py",
           size: tuple[int, int] = (1920, 1080), font_px: int = 18, cursor: tuple[int, int] | None = None,
           cursor_on: bool = True, scroll: int = 0) -> Image.Image:
    """An IDE window: title bar, tab, file tree, (gutter,) code, status bar."""
    w, h = size
    img = Image.new("RGB", size, theme.bg)
    d = ImageDraw.Draw(img)
    ui = font(SANS, 14)
    mono = font(MONO, font_px)
    d.rectangle([0, 0, w, 34], fill=theme.chrome)
    d.text((w // 2 - 120, 9), f"{filename} - interview - Code", font=ui, fill=theme.gutter_fg)
    side_w = 260
    d.rectangle([0, 34, side_w, h - 24], fill=theme.sidebar)
    d.text((16, 46), "EXPLORER", font=ui, fill=theme.gutter_fg)
    for i, name in enumerate(["interview", "  solution.py", "  test_solution.py", "  README.md"]):
        d.text((16, 76 + 24 * i), name, font=ui, fill=theme.fg)
    d.rectangle([side_w, 34, w, 70], fill=theme.sidebar)
    d.rectangle([side_w, 34, side_w + 180, 70], fill=theme.bg)
    d.text((side_w + 16, 44), filename, font=ui, fill=theme.fg)
    d.rectangle([0, h - 24, w, h], fill=theme.status)
    d.text((12, h - 20), "main   Python 3.12   UTF-8   LF   Ln 1, Col 1", font=ui, fill=(255, 255, 255))
    line_h = int(font_px * 1.45)
    x0 = side_w + (70 if gutter else 20)
    y0 = 84
    char_w = mono.getlength("M")
    for n, line in enumerate(code.splitlines()[scroll:], start=scroll + 1):
        y = y0 + (n - 1 - scroll) * line_h
        if y > h - 24 - line_h:
            break
        if gutter:
            num = str(n)
            d.text((side_w + 50 - mono.getlength(num), y), num, font=mono, fill=theme.gutter_fg)
        x = x0
        for token in re.findall(r"\"[^\"]*\"?|'[^']*'?|#.*|[A-Za-z_][A-Za-z0-9_]*|\s+|.", line):
            d.text((x, y), token, font=mono, fill=_token_color(token, theme))
            x += char_w * len(token)
    if cursor is not None and cursor_on:
        row, col = cursor
        cx = x0 + col * char_w
        cy = y0 + (row - scroll) * line_h
        d.rectangle([cx, cy, cx + 1, cy + line_h - 4], fill=theme.fg)
    return img


def terminal(lines: list[str], size: tuple[int, int] = (1920, 1080)) -> Image.Image:
    img = Image.new("RGB", size, (12, 12, 12))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, size[0], 34], fill=(60, 60, 60))
    d.text((size[0] // 2 - 60, 9), "Terminal - bash", font=font(SANS, 14), fill=(220, 220, 220))
    mono = font(MONO, 18)
    for i, line in enumerate(lines):
        d.text((20, 50 + i * 26), line, font=mono, fill=(204, 204, 204))
    return img


TRACEBACK = [
    "$ python solution.py",
    "Traceback (most recent call last):",
    '  File "/home/candidate/solution.py", line 14, in <module>',
    "    print(two_sum(numbers, goal))",
    '  File "/home/candidate/solution.py", line 7, in two_sum',
    "    return [seen[complement], index]",
    "KeyError: 3",
    "$",
]


def browser(query: str, results: list[str], size: tuple[int, int] = (1920, 1080)) -> Image.Image:
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    ui = font(SANS, 16)
    d.rectangle([0, 0, size[0], 80], fill=(222, 225, 230))
    d.rectangle([8, 4, 360, 22], fill=(255, 255, 255))
    d.text((16, 5), f"{query} - Google Search", font=font(SANS, 13), fill=(30, 30, 30))
    d.rounded_rectangle([200, 28, 1400, 64], radius=16, fill=(255, 255, 255))
    d.text((220, 36), f"https://www.google.com/search?q={query.replace(' ', '+')}", font=ui, fill=(30, 30, 30))
    d.text((180, 110), "Google", font=font(SANS, 30), fill=(66, 133, 244))
    d.rounded_rectangle([330, 106, 1100, 150], radius=20, outline=(200, 200, 200), width=2)
    d.text((350, 116), query, font=font(SANS, 18), fill=(30, 30, 30))
    d.text((330, 170), "About 1,240,000 results (0.41 seconds)", font=font(SANS, 14), fill=(110, 110, 110))
    for i, title in enumerate(results):
        y = 210 + i * 110
        d.text((330, y), "https://leetcode.com > problems", font=font(SANS, 14), fill=(32, 33, 36))
        d.text((330, y + 24), title, font=font(SANS, 22), fill=(26, 13, 171))
        d.text((330, y + 58), "Given an array of integers nums and an integer target, return indices ...",
               font=font(SANS, 15), fill=(77, 81, 86))
    return img


def jpeg(img: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


SESSION_CODE = TWO_SUM + "\n\n" + MERGE + "\n\n" + LRU


def coding_session(seconds: float, fps: float, seed: int = 7, theme: Theme = DARK,
                   idle_max: float = 0.4) -> list[tuple[int, bytes]]:
    """A screen share of someone typing SESSION_CODE: bursts of 3-5 characters a second for
    3-12 s, pauses of 2-8 s (idle <= `idle_max` of the time), a blinking cursor (500 ms) while idle.
    Returns (capture time ms, JPEG) at `fps`; identical screens share one encoding."""
    events = [(t, k + 1) for k, t in enumerate(coding_session_events(seconds, seed, idle_max))]
    out: list[tuple[int, bytes]] = []
    cache: dict[tuple[int, bool], bytes] = {}
    i = 0
    for n in range(int(seconds * fps)):
        now = n / fps
        while i < len(events) and events[i][0] <= now:
            i += 1
        chars = events[i - 1][1] if i else 0
        last_key = events[i - 1][0] if i else 0.0
        text = SESSION_CODE[: chars % len(SESSION_CODE)]
        cursor_on = (now - last_key) < 0.5 or int((now - last_key) * 2) % 2 == 0
        key = (chars, cursor_on)
        if key not in cache:
            lines = text.split("\n")
            row, col = len(lines) - 1, len(lines[-1])
            scroll = max(0, row - 40)
            cache[key] = jpeg(editor(text, theme, cursor=(row, col), cursor_on=cursor_on, scroll=scroll))
        out.append((int(now * 1000), cache[key]))
    return out


def idle_fraction(seconds: float, seed: int = 7) -> float:
    """Share of the session without a keystroke for >= 1 s (for the benchmark's record)."""
    frames = coding_session_events(seconds, seed)
    gaps = [b - a for a, b in zip(frames, frames[1:]) if b - a >= 1.0]
    return sum(gaps) / seconds


def coding_session_events(seconds: float, seed: int = 7, idle_max: float = 0.4) -> list[float]:
    """Keystroke times: bursts of 3-12 s at 3-5 characters a second, pauses of 2-8 s."""
    import random

    rng = random.Random(seed)
    times: list[float] = []
    t, idle = 0.0, 0.0
    while t < seconds:
        end = min(seconds, t + rng.uniform(3, 12))
        cps = rng.uniform(3, 5)
        while t < end:
            t += 1 / cps
            times.append(t)
        pause = rng.uniform(2, 8)
        if (idle + pause) / max(1.0, t + pause) <= idle_max:
            idle += pause
            t += pause
    return times
