"""The offline voices start speaking at once: flite's ~170 ms of leading near-silence per piece is
cut to a short lead, and nothing after it is lost (real flite and espeak-ng through the service,
against a second server with TTS_OFFLINE_TRIM_LEADING_SILENCE=false)."""
from __future__ import annotations

import numpy as np
import pytest

from interview.v1 import tts_pb2
from services.common.audio import window_dbfs
from tests.tts.conftest import collect, request_stream

LOUD_DBFS = -45.0  # as the benchmarks measure "first loud audio"
TEXT = ["That's interesting. ", "Tell me more about the cache."]


def pieces(responses: list[tts_pb2.SynthesizeResponse]) -> list[np.ndarray]:
    """Each piece's audio, by segment_index."""
    out: dict[int, list[bytes]] = {}
    for r in responses:
        if r.WhichOneof("msg") == "audio":
            out.setdefault(r.audio.segment_index, []).append(r.audio.pcm)
    return [np.frombuffer(b"".join(out[i]), dtype="<i2") for i in sorted(out)]


def first_loud_ms(samples: np.ndarray, rate: int) -> int:
    loud = np.nonzero(window_dbfs(samples, rate) > LOUD_DBFS)[0]
    assert len(loud), "no speech at all"
    return int(loud[0]) * 10


# Each engine at its own rate: no resampling, so a trimmed piece is exactly a suffix of the untrimmed one.
@pytest.mark.parametrize("voice,rate", [("rms", 16000), ("espeak-ng", 22050)])
async def test_speech_starts_at_once_and_nothing_is_lost(tts_server, voice: str, rate: int) -> None:
    trimmed = await tts_server()
    untrimmed = await tts_server(TTS_OFFLINE_TRIM_LEADING_SILENCE="false")
    cfg = tts_pb2.TtsConfig(sample_rate_hz=rate, voice=voice)
    got = pieces(await collect(trimmed.Synthesize(request_stream(cfg, TEXT))))
    full = pieces(await collect(untrimmed.Synthesize(request_stream(cfg, TEXT))))
    assert len(got) == len(full) == 2

    assert first_loud_ms(got[0], rate) <= 40, "the first word still waits behind the synthesiser's silence"
    fade = rate * 5 // 1000
    for trim, whole in zip(got, full):
        cut = len(whole) - len(trim)
        assert cut >= 0
        # The whole text is spoken: the same samples to the end, only the lead is shorter.
        assert np.array_equal(trim[fade:], whole[cut + fade:])
        lead = first_loud_ms(whole, rate)
        if voice == "rms":  # flite pads ~120-250 ms; all but 20 ms of it goes
            assert lead >= 120 and cut >= rate // 10, (lead, cut)
        else:  # espeak-ng speaks after 10-50 ms of digital silence: little to cut
            assert lead <= 50 and cut <= rate * 40 // 1000, (lead, cut)
