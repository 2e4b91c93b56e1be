"""Smart Turn v3.2 (end-of-turn model) through onnxruntime, with its Whisper log-mel features in numpy.

The model (BSD-2-Clause, Whisper-tiny encoder + classifier, CPU int8, 8.7 MB) ships inside the
`pipecat-ai` wheel, installed with --no-deps. It is located with importlib.util.find_spec and never
imported: pipecat's package __init__ needs loguru, which the VAD image does not carry.

Input `input_features` float32 [B, 80, 800]: Whisper log-mel features of the last 8 s of 16 kHz
audio (zero-padded on the left); output [B, 1] is already the probability that the turn is
complete. The batch dimension is dynamic and rows are independent, so turns of many streams are
scored in one call.
"""
from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

RATE = 16000
SECONDS = 8
N_SAMPLES = RATE * SECONDS   # 128000 samples per row
N_FFT = 400                  # 25 ms analysis window
HOP = 160                    # 10 ms hop
N_MELS = 80
N_FRAMES = N_SAMPLES // HOP  # 800 frames (the STFT gives 801; Whisper drops the last)
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
_MODEL_DIR = ("audio", "turn", "smart_turn", "data")


class TurnModelMissing(RuntimeError):
    """The Smart Turn model file is not installed; turn scoring stays off."""


def model_path() -> Path:
    """The ONNX file inside the installed pipecat-ai package (found without importing pipecat)."""
    try:
        spec = importlib.util.find_spec("pipecat")
    except (ImportError, ValueError):
        spec = None
    hint = "pip install --no-deps 'pipecat-ai==1.14.0'"
    if spec is None or not spec.submodule_search_locations:
        raise TurnModelMissing(f"the pipecat-ai package (which ships {MODEL_FILE}) is not installed: {hint}")
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*_MODEL_DIR, MODEL_FILE)
        if path.exists():
            return path
    raise TurnModelMissing(f"{MODEL_FILE} not found under {list(spec.submodule_search_locations)}: {hint}")


# --- Whisper log-mel features -------------------------------------------------------------------

def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Hz -> mel on the Slaney scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(hz < 1000.0, hz * 3.0 / 200.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / log_step)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    log_step = np.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(log_step * (mel - 15.0)))


@cache
def mel_filterbank() -> np.ndarray:
    """[N_MELS, N_FFT//2 + 1] triangular filters, evenly spaced in Slaney mel over 0..8 kHz,
    area-normalised (each filter scaled by 2 / its bandwidth): Whisper's filterbank."""
    edges = _slaney_hz(np.linspace(_slaney_mel(0.0), _slaney_mel(RATE / 2), N_MELS + 2))
    bins = np.linspace(0.0, RATE / 2, N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    triangles = np.clip(np.minimum(rising, falling), 0.0, None)
    return triangles * (2.0 / (upper - lower))


@cache
def _hann() -> np.ndarray:
    """Periodic Hann window (torch.hann_window's default), as Whisper's STFT uses."""
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)


def last_window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s of a 16 kHz signal as float32 in [-1, 1), zero-padded on the left."""
    x = np.asarray(audio)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    x = x[-N_SAMPLES:]
    if len(x) < N_SAMPLES:
        x = np.concatenate([np.zeros(N_SAMPLES - len(x), dtype=np.float32), x])
    return x


def log_mel(rows: np.ndarray) -> np.ndarray:
    """Whisper features of 8 s rows: [B, 128000] float -> [B, 80, 800] float32.

    Per row: zero-mean unit-variance normalisation of the waveform, centred STFT (reflect padding,
    periodic Hann window of 400, hop 160), power spectrum, mel filterbank, log10 (floor 1e-10),
    dynamic range clamped to 8 (in log10 units) below the row's maximum, then (x + 4) / 4.
    """
    x = np.atleast_2d(np.asarray(rows, dtype=np.float32))
    if x.shape[1] != N_SAMPLES:
        raise ValueError(f"log_mel takes rows of {N_SAMPLES} samples (8 s at 16 kHz), got {x.shape[1]}")
    x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-7)
    half = N_FFT // 2
    padded = np.pad(x.astype(np.float64), ((0, 0), (half, half)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP][:, :N_FRAMES]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=-1)) ** 2          # [B, 800, 201]
    mel = np.log10(np.maximum(power @ mel_filterbank().T, 1e-10))         # [B, 800, 80]
    mel = np.maximum(mel, mel.max(axis=(1, 2), keepdims=True) - 8.0)
    return ((mel + 4.0) / 4.0).transpose(0, 2, 1).astype(np.float32)


# --- the model -----------------------------------------------------------------------------------

class SmartTurnModel:
    """One onnxruntime session (one intra-op thread, like Silero: the process scales by batching)."""

    def __init__(self, path: Path | None = None, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.path = path or model_path()
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.calls = 0  # ONNX calls made (the batching test counts them)

    def run(self, features: np.ndarray) -> np.ndarray:
        """[B, 80, 800] features -> [B] probabilities that each turn is complete."""
        self.calls += 1
        (out,) = self.session.run(None, {"input_features": features})
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def score(self, audios: list[np.ndarray]) -> list[float]:
        """Turn probabilities of 16 kHz signals (each: its last 8 s count), in ONE model call."""
        if not audios:
            return []
        return self.run(log_mel(np.stack([last_window(a) for a in audios]))).tolist()
