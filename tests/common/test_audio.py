import numpy as np
import pytest
import soxr

from services.common.audio import Rebuffer, Resampler, pcm_to_int16, read_wav, trim_leading_silence, window_dbfs
from tests.load.harness import FIXTURES


def test_rebuffer_gives_exact_windows_with_offsets():
    rb = Rebuffer(512)
    sig = np.arange(2000, dtype=np.int16)
    out = []
    for start in range(0, 2000, 160):  # 10 ms WebRTC-sized chunks
        out += rb.push(sig[start:start + 160], start)
    assert [w.offset for w in out] == [0, 512, 1024]
    assert all(len(w.samples) == 512 for w in out)
    assert np.array_equal(np.concatenate([w.samples for w in out]), sig[:1536])
    assert rb.pending == 2000 - 1536


def test_rebuffer_never_straddles_a_gap():
    rb = Rebuffer(512)
    assert rb.push(np.ones(300, dtype=np.int16), 0) == []
    wins = rb.push(np.ones(600, dtype=np.int16), 10_000)  # gap: partial window dropped
    assert [w.offset for w in wins] == [10_000]


def test_pcm_odd_byte_count_is_rejected():
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm_to_int16(b"\x00\x01\x02")


def test_streaming_resampler_chunks_leave_no_trace_and_match_soxr():
    samples, rate = read_wav(FIXTURES / "goforward_16k.wav")
    assert rate == 16000
    rs = Resampler(16000, 48000)
    parts = [rs.process(samples[i:i + 320]) for i in range(0, len(samples), 320)]
    parts.append(rs.process(np.zeros(0, dtype=np.int16), last=True))
    streamed = np.concatenate(parts)
    assert len(streamed) == 3 * len(samples)
    # chunk boundaries change nothing: identical to resampling the whole signal in one call
    assert np.array_equal(streamed, Resampler(16000, 48000).process(samples, last=True))
    # and it is a real resampler: close to soxr's one-shot VHQ (measured ~57 dB on speech)
    ref = soxr.resample(samples.astype(np.float32), 16000, 48000, "VHQ")
    n = min(len(ref), len(streamed))
    snr = 10 * np.log10(np.mean(ref[:n] ** 2) / np.mean((ref[:n] - streamed[:n]) ** 2))
    assert snr >= 40


@pytest.mark.parametrize(("rin", "rout", "chunk"), [(48000, 16000, 960), (16000, 48000, 512), (24000, 48000, 480)])
def test_streaming_resampler_holds_back_almost_nothing(rin: int, rout: int, chunk: int) -> None:
    """Live audio must not wait inside the resampler: soxr's stream held back ~20 ms per stage."""
    rs = Resampler(rin, rout)
    held = []
    sent = produced = 0
    for _ in range(50):
        produced += len(rs.process(np.full(chunk, 1000, np.int16)))
        sent += chunk
        held.append(sent * rout / rin - produced)
    assert max(held[5:]) / rout * 1000 <= 3.0


def test_read_wav_resamples():
    samples, rate = read_wav(FIXTURES / "goforward_16k.wav", rate=8000)
    assert rate == 8000 and abs(len(samples) - 0.5 * len(read_wav(FIXTURES / "goforward_16k.wav")[0])) <= 2


def test_preroll_keeps_the_latest_samples_with_offsets():
    from services.common.audio import PreRoll

    pr = PreRoll(8000)  # 500 ms at 16 kHz
    sig = np.arange(20_000, dtype=np.int16)
    for off in range(0, 20_000, 512):
        pr.push(sig[off:off + 512], off)
    start, held = pr.since(0)  # asks for more than is held: clamped
    assert start == 20_000 - 8000 and np.array_equal(held, sig[-8000:])
    start, held = pr.since(19_000)
    assert start == 19_000 and np.array_equal(held, sig[19_000:])
    assert len(pr.since(25_000)[1]) == 0
    pr.push(sig[:100], 50_000)  # a gap drops what was held
    start, held = pr.since(0)
    assert start == 50_000 and np.array_equal(held, sig[:100])


def test_streaming_resampler_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    signal = (rng.standard_normal(48000) * 3000).astype(np.int16)

    def once() -> bytes:
        r = Resampler(48000, 16000)
        return b"".join(r.process(signal[i:i + 1536]).tobytes() for i in range(0, len(signal), 1536))

    assert len({once() for _ in range(5)}) == 1


def test_trim_leading_silence_cuts_to_a_short_faded_lead() -> None:
    rate = 16000
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(rate // 5) * 20).astype(np.int16)  # 200 ms at ~-64 dBFS: below the threshold
    voice = (np.sin(np.arange(rate // 2) * 0.2) * 8000).astype(np.int16)
    out = trim_leading_silence(np.concatenate([hiss, voice]), rate)
    assert len(out) == 320 + len(voice)  # 20 ms of lead kept
    assert out[0] == 0 and np.array_equal(out[80:320], hiss[-240:])  # faded in over 5 ms, then untouched
    assert np.array_equal(out[320:], voice)
    assert out.dtype == np.int16


def test_trim_leading_silence_never_cuts_speech() -> None:
    rate = 16000
    voice = (np.sin(np.arange(rate // 2) * 0.2) * 8000).astype(np.int16)
    quiet = (np.random.default_rng(1).standard_normal(rate) * 20).astype(np.int16)
    for signal in (voice,                                                   # speech from sample 0
                   np.concatenate([np.zeros(200, np.int16), voice]),       # onset within the 20 ms lead
                   np.zeros(rate, np.int16), quiet,                         # nothing loud: left whole
                   np.zeros(0, np.int16), np.array([9000, -9000, 5], np.int16), np.zeros(3, np.int16)):  # very short
        assert trim_leading_silence(signal, rate) is signal
    # a loud blip shorter than a window still counts as the start
    blip = np.concatenate([np.zeros(rate // 2, np.int16), np.full(40, 4000, np.int16)])
    assert len(trim_leading_silence(blip, rate)) == len(blip) - (rate // 2 // 160 * 160 - 320)


def test_window_dbfs() -> None:
    levels = window_dbfs(np.concatenate([np.full(160, 3277, np.int16), np.zeros(160, np.int16), np.full(50, 32767, np.int16)]), 16000)
    assert levels[0] == pytest.approx(-20, abs=0.01) and levels[1] == -np.inf and levels[2] == pytest.approx(0, abs=0.01)


def test_preroll_ring_matches_a_plain_buffer_for_any_chunking():
    from services.common.audio import PreRoll

    rng = np.random.default_rng(1)
    sig = rng.integers(-30000, 30000, 50_000).astype(np.int16)
    for capacity in (1, 777, 8000, 60_000):
        pr, off = PreRoll(capacity), 0
        while off < len(sig):
            n = int(rng.integers(1, 3000)) if off % 7 else int(rng.integers(1, 12_000))  # some longer than the ring
            pr.push(sig[off:off + n], off)
            off = min(off + n, len(sig))
            want_from = int(rng.integers(0, off + 1))
            start, held = pr.since(want_from)
            assert start == max(want_from, off - capacity), (capacity, off, want_from)
            assert np.array_equal(held, sig[start:off])
