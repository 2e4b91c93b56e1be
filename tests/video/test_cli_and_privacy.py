"""The `analyze` CLI, and analyze-and-discard: no image bytes in logs or on disk, secrets and
e-mail addresses read off the screen never leave the service."""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from interview.v1 import common_pb2
from services.common import logs
from tests.video.conftest import cfg, frame, run
from tests.video.screens import DARK, LIGHT, TRACEBACK, TWO_SUM, editor, jpeg, terminal

ROOT = Path(__file__).resolve().parents[2]
SECRET_CODE = TWO_SUM.replace('    seen = {}', '    seen = {}  # ask jane.doe@example.com\n'
                              '    API_KEY = "sk-proj-Zx81QmWq29LkTtYb44NcVe"')


def test_cli_prints_json_lines_and_exits_2_on_unreadable(tmp_path: Path) -> None:
    editor(TWO_SUM, LIGHT).save(tmp_path / "a_editor.png")
    (tmp_path / "b_terminal.jpg").write_bytes(jpeg(terminal(TRACEBACK)))
    r = subprocess.run([sys.executable, "-m", "services.video", "analyze", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["type"] for x in lines] == ["code_observation", "screen_content"], lines
    assert "two_sum" in lines[0]["detail"] and "KeyError" in lines[1]["detail"]
    (tmp_path / "c_broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    r = subprocess.run([sys.executable, "-m", "services.video", "analyze", str(tmp_path / "c_broken.jpg")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a readable image" in r.stderr and not r.stdout
    r = subprocess.run([sys.executable, "-m", "services.video", "analyze", str(tmp_path / "missing")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no such file" in r.stderr


def _files(root: Path, since: float) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", "__pycache__", ".pytest_cache")]
        for name in filenames:
            p = Path(dirpath, name)
            try:
                if p.stat().st_mtime >= since:
                    out.append(p)
            except OSError:
                pass
    return out


def _is_image(p: Path) -> bool:
    try:
        head = p.read_bytes()[:4]
    except OSError:
        return False
    return head.startswith((b"\xff\xd8", b"P5", b"P6", b"\x89PNG"))


async def test_no_image_bytes_reach_logs_or_disk_and_secrets_are_redacted(video_server, tmp_path, monkeypatch) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))  # tesseract (and anything else) would write here
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.setup("video", "DEBUG", stream=buf)
    try:
        start = time.time() - 1
        stub = await video_server(LOG_LEVEL="DEBUG")
        frames_sent = [jpeg(editor(SECRET_CODE, DARK)), jpeg(terminal(TRACEBACK))]
        reqs = [cfg(camera=True)] + [frame(f, i * 1000) for i, f in enumerate(frames_sent)]
        reqs.append(frame(jpeg(editor("", DARK).resize((320, 240))), 2000, common_pb2.VIDEO_SOURCE_CAMERA))
        obs, problems, stats, _ = await run(stub, reqs)
        for h in logging.getLogger().handlers:
            h.flush()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert stats.frames_analyzed == 3 and obs
    text = " ".join(o.detail for o in obs)
    assert "sk-proj" not in text and "jane.doe" not in text and "example.com" not in text
    logged = buf.getvalue()
    assert "video stream closed" in logged  # the logs were captured
    for data in frames_sent:
        b64 = base64.b64encode(data).decode()
        for chunk in (b64[100:140], b64[len(b64) // 2:len(b64) // 2 + 40], data[200:240].hex()):
            assert chunk not in logged
    assert "\\xff\\xd8" not in logged and "/9j/" not in logged  # raw or base64 JPEG start
    assert "sk-proj" not in logged and "jane.doe" not in logged
    assert not list(tmpdir.iterdir())
    # the worktree, and /tmp's top level and leptonica's /tmp/lept (other tests own the rest of /tmp)
    tmp_top = [p for p in Path("/tmp").iterdir() if p.is_file() and p.stat().st_mtime >= start]
    written = [p for p in _files(ROOT, start) + _files(Path("/tmp/lept"), start) + tmp_top if _is_image(p)]
    assert not written, written
