"""Headless Chromium (Debian chromium + chromedriver via Selenium) with a WAV as its microphone."""
from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from services.common.audio import read_wav, resample, write_wav

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def mic_file(wav: Path, lead_silence_s: float, tail_silence_s: float = 2.0) -> Path:
    samples, rate = read_wav(wav, 48000)
    pad = np.zeros(int(lead_silence_s * 48000), np.int16)
    path = Path(tempfile.mkdtemp(prefix="mic-")) / "mic.wav"
    write_wav(path, np.concatenate([pad, samples, np.zeros(int(tail_silence_s * 48000), np.int16)]), 48000)
    return path


def chromium(mic: Path) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={mic}%noloop",
                 "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
                 "--disable-features=WebRtcHideLocalIpsWithMdns", "--auto-select-desktop-capture-source=Entire screen",
                 "--window-size=1100,900"]:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def recording(driver: webdriver.Chrome) -> tuple[np.ndarray, np.ndarray, int]:
    """(samples int16, wall time of each sample, rate) of what the page played."""
    rec = driver.execute_script("return window.__rec ? window.__rec.export() : null")
    assert rec is not None, "the page recorded nothing"
    pcm = np.frombuffer(base64.b64decode(rec["pcm"]), "<i2")
    block, rate = rec["block"], rec["rate"]
    times = np.zeros(len(pcm))
    for k, t in enumerate(rec["times"]):  # a block's callback runs just after its last sample
        times[k * block:(k + 1) * block] = t / 1000 - (block - np.arange(block)) / rate
    return pcm, times, rate


def to16k(samples: np.ndarray, rate: int) -> np.ndarray:
    return resample(samples, rate, 16000)
