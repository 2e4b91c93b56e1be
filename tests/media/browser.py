"""Headless Chromium (Debian chromium + chromedriver via Selenium) with a WAV as its microphone."""
from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from services.common.audio import read_wav, resample, write_wav

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def mic_file(wav: Path, lead_silence_s: float, tail_silence_s: float = 2.0) -> Path:
    samples, rate = read_wav(wav, 48000)
    pad = np.zeros(int(lead_silence_s * 48000), np.int16)
    path = Path(tempfile.mkdtemp(prefix="mic-")) / "mic.wav"
    write_wav(path, np.concatenate([pad, samples, np.zeros(int(tail_silence_s * 48000), np.int16)]), 48000)
    return path


def chromium(mic: Path, capture_tab: str = "") -> webdriver.Chrome:
    """`capture_tab`: getDisplayMedia shares the tab with this title — a real capture of what the
    tab renders. Chromium's fake UI (--use-fake-ui-for-media-stream) with the fake devices would
    answer getDisplayMedia with a generated test pattern instead (label "screen:-3:0"), so in that
    mode the UI flag is left out, the picker is answered by --auto-select-desktop-capture-source
    (it matches tab titles too) and the microphone permission is granted over CDP."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    ui = [f"--auto-select-desktop-capture-source={capture_tab}"] if capture_tab else \
        ["--use-fake-ui-for-media-stream", "--auto-select-desktop-capture-source=Entire screen"]
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", *ui,
                 "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={mic}%noloop",
                 "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
                 "--disable-features=WebRtcHideLocalIpsWithMdns", "--window-size=1100,900"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    if capture_tab:
        driver.execute_cdp_cmd("Browser.grantPermissions", {"permissions": ["audioCapture"]})  # all origins
    return driver


@dataclass
class Recording:
    """What the page played (`pcm`) and what its microphone sent (`mic`), sample-aligned on the
    page's audio clock; `times` is each sample's wall-clock time."""
    pcm: np.ndarray
    mic: np.ndarray
    times: np.ndarray
    rate: int


def recording(driver: webdriver.Chrome) -> Recording:
    """The page's ?record=1 capture. Blocks are placed by their audio-clock frame, not by when the
    busy main thread got them; the wall-clock anchor is the least-delayed block's arrival (a block
    never arrives before its last sample was rendered)."""
    rec = driver.execute_script("return window.__rec && window.__rec.export ? window.__rec.export() : null")
    assert rec is not None and rec["frames"], "the page recorded nothing"
    rate = rec["rate"]
    frames, lengths = np.array(rec["frames"], dtype=np.int64), np.array(rec["lengths"], dtype=np.int64)
    anchor = float(np.min(np.array(rec["times"]) / 1000 - (frames + lengths) / rate))
    sample_frames = np.concatenate([f + np.arange(n) for f, n in zip(frames, lengths)])
    pcm, mic = (np.frombuffer(base64.b64decode(rec[key]), "<i2") for key in ("pcm", "mic"))
    return Recording(pcm, mic, anchor + sample_frames / rate, rate)


def to16k(samples: np.ndarray, rate: int) -> np.ndarray:
    return resample(samples, rate, 16000)


async def join_call(driver: webdriver.Chrome, join_url: str, ice_timeout_s: float = 5.0) -> None:
    """Open the candidate link as sent, with the test hooks in the query (record what the page
    plays and the raw microphone, no echo cancellation / AGC), click Join and wait until connected."""
    base, fragment = join_url.split("#", 1)
    await asyncio.to_thread(driver.get, f"{base}?record=1&rawaudio=1#{fragment}")
    await asyncio.to_thread(lambda: driver.find_element(By.ID, "join-btn").click())
    deadline = time.monotonic() + 2 * ice_timeout_s
    while not await asyncio.to_thread(driver.execute_script, "return window.__media.connectedAt > 0"):
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not connect")
        await asyncio.sleep(0.05)
    st = await asyncio.to_thread(driver.execute_script, "return window.__media")
    if (st["connectedAt"] - st["startedAt"]) / 1000 >= ice_timeout_s:
        raise TimeoutError(f"ICE took {ice_timeout_s:g} s or more")
