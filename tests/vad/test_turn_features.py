"""Our Whisper log-mel features against the reference inside the installed pipecat-ai package.

The reference (`pipecat/audio/turn/smart_turn/_whisper_features.py`, a numpy port of
transformers' WhisperFeatureExtractor) is loaded by file path: `import pipecat` needs loguru."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from services.vad import turn_model
from tests.vad.helpers import PHONE, load


def _reference():
    spec = importlib.util.find_spec("pipecat")
    assert spec is not None and spec.submodule_search_locations, "pipecat-ai is not installed (make install)"
    path = Path(list(spec.submodule_search_locations)[0], "audio", "turn", "smart_turn", "_whisper_features.py")
    mod_spec = importlib.util.spec_from_file_location("pipecat_whisper_features", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.compute_whisper_log_mel_features


REFERENCE = _reference()


@pytest.mark.parametrize("name, start_s, seconds", [
    ("lecture_60s_16k.wav", 10.0, 8.0),                               # a full 8 s of speech
    (PHONE.name, 3.0, 5.2),                                           # shorter: zero-padded on the left
    ("librivox/sense_and_sensibility_01_austen_64kb-0870.wav", 0.0, 20.0),  # the whole clip (< 8 s)
])
def test_features_match_the_reference_on_real_speech(name, start_s, seconds):
    audio = load(name)[int(start_s * 16000):int((start_s + seconds) * 16000)]
    row = turn_model.last_window(audio)
    ours = turn_model.log_mel(row[None])[0]
    ref = REFERENCE(row, do_normalize=True)
    assert ours.shape == ref.shape == (80, 800)
    assert float(np.abs(ours - ref).max()) <= 1e-3


def test_rows_of_a_batch_are_independent():
    audio = load("lecture_60s_16k.wav")
    rows = np.stack([turn_model.last_window(audio[:n]) for n in (16000, 90000, 400000)])
    batched = turn_model.log_mel(rows)
    for i, row in enumerate(rows):
        assert np.array_equal(batched[i], turn_model.log_mel(row[None])[0])


def test_the_model_is_found_without_importing_pipecat():
    import sys
    path = turn_model.model_path()
    assert path.name == "smart-turn-v3.2-cpu.onnx" and path.stat().st_size > 8_000_000
    assert "pipecat" not in sys.modules
