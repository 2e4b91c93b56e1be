"""Silero VAD through onnxruntime, numpy only, with batching across streams.

The model file ships inside the `silero-vad` package; it is located with importlib.util.find_spec,
never imported (`import silero_vad` pulls torch). Each row of a batch is one stream's window plus
its own recurrent state, and rows are independent, so windows of many streams go through one call.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# sample rate -> (new samples per window, context samples carried over from the previous window)
WINDOWS: dict[int, tuple[int, int]] = {16000: (512, 64), 8000: (256, 32)}
STATE_SHAPE = (2, 128)  # per row; the model takes [2, B, 128]


def model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        raise RuntimeError("the silero-vad package is not installed: pip install --no-deps silero-vad==6.2.3")
    path = Path(spec.origin).parent / "data" / "silero_vad.onnx"
    if not path.exists():
        raise RuntimeError(f"silero_vad.onnx not found at {path}")
    return path


def window_samples(rate: int) -> int:
    return WINDOWS[rate][0]


@dataclass
class StreamState:
    """One stream's recurrent model state and the context tail of its previous window."""

    rate: int
    state: np.ndarray = field(init=False)
    context: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.rate not in WINDOWS:
            raise ValueError(f"unsupported sample rate {self.rate}")
        self.state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.context = np.zeros(WINDOWS[self.rate][1], dtype=np.float32)

    def model_input(self, window: np.ndarray) -> np.ndarray:
        """context + window as float32 in [-1, 1) (the scaling Silero was trained with)."""
        return np.concatenate([self.context, window.astype(np.float32) * (1.0 / 32768.0)])


class SileroModel:
    """One onnxruntime session (one intra-op thread: the process scales by batching, not threads)."""

    def __init__(self, path: Path | None = None, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path or model_path()), opts, providers=["CPUExecutionProvider"])
        self._sr = {rate: np.array(rate, dtype=np.int64) for rate in WINDOWS}

    def run(self, rate: int, inputs: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """inputs [B, ctx+win] float32, states [2, B, 128] -> (probabilities [B], new states [2, B, 128])."""
        out, new_states = self.session.run(None, {"input": inputs, "state": states, "sr": self._sr[rate]})
        return out[:, 0], new_states

    def step(self, stream: StreamState, window: np.ndarray) -> float:
        """One unbatched window for one stream (CLI, tests): updates the stream's state in place."""
        x = stream.model_input(window)
        probs, new_states = self.run(stream.rate, x[None, :], stream.state[:, None, :])
        stream.state = new_states[:, 0, :]
        stream.context = x[-len(stream.context):]
        return float(probs[0])
