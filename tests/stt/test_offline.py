"""Offline provider (real pocketsphinx) through the real gRPC service."""
from __future__ import annotations

import asyncio

from services.common.audio import read_wav, resample
from services.stt.providers.offline.decoder import decode_whole
from tests.stt.support import answers, audio, cfg, fin, librivox, run, speech, stt_server
from tests.support.wer import corpus_wer, wer


async def test_streamed_wer_within_002_of_whole_file_decoding() -> None:
    clips = librivox()
    async with stt_server() as stt:
        streamed = await asyncio.gather(*[
            run(stt.stub, [cfg(provider="offline"), *audio(read_wav(path)[0]), fin("u")]) for path, _ in clips])
    loop = asyncio.get_running_loop()
    whole = await asyncio.gather(*[loop.run_in_executor(None, decode_whole, read_wav(path)[0]) for path, _ in clips])
    streamed_wer = corpus_wer((ref, answers(rs)["u"].text) for (_, ref), rs in zip(clips, streamed))
    whole_wer = corpus_wer((ref, text) for (_, ref), text in zip(clips, whole))
    assert whole_wer < 0.35  # sanity: the reference decoding is real (pocketsphinx does ~0.28 here)
    assert abs(streamed_wer - whole_wer) <= 0.02, (streamed_wer, whole_wer)


async def test_offsets_stay_on_the_callers_timeline_across_gaps() -> None:
    go, forever = speech("goforward_16k.wav"), speech("forever_16k.wav")
    gap_at = 500_000  # the second recording arrives 31 s later on the caller's timeline (VAD-gated)
    async with stt_server() as stt:
        rs = await run(stt.stub, [cfg(), *audio(go, offset=1000), *audio(forever, offset=gap_at), fin("u")])
    result = answers(rs)["u"]
    assert "forward" in result.text and "forever" in result.text
    assert result.start_offset_samples == 1000
    assert result.end_offset_samples == gap_at + len(forever)
    by_word = {w.text: w for w in result.words}
    assert 1000 < by_word["forward"].start_offset_samples < 1000 + len(go)
    assert gap_at < by_word["forever"].start_offset_samples < gap_at + len(forever)
    starts = [w.start_offset_samples for w in result.words]
    assert starts == sorted(starts)


async def test_results_do_not_depend_on_earlier_utterances() -> None:
    go, forever = speech("goforward_16k.wav"), speech("forever_16k.wav")
    script, offset = [cfg()], 0
    gap = 8000  # VAD-gated utterances: a gap between them (audio going on where a FINALIZE cut it is
    # the same speech: it carries the feature state on, tests/stt/test_pieces.py)
    for i in range(4):  # one decoder for everything: any state carried between utterances would show
        script += [*audio(go, offset=offset), fin(f"go{i}"), *audio(forever, offset=offset + len(go) + gap),
                   fin(f"ever{i}")]
        offset += len(go) + len(forever) + 2 * gap
    async with stt_server({"STT_OFFLINE_MAX_DECODERS": "1"}) as stt:
        fresh = answers(await run(stt.stub, [cfg(), *audio(forever), fin("a")]))["a"].text
        got = answers(await run(stt.stub, script))
    assert {got[f"ever{i}"].text for i in range(4)} == {fresh}
    assert len({got[f"go{i}"].text for i in range(4)}) == 1 and "forward" in got["go0"].text


async def test_interim_results_are_rate_limited_and_grow() -> None:
    clip = speech("forever_16k.wav")
    async with stt_server({"STT_OFFLINE_INTERIM_MS": "400"}) as stt:
        rs = await run(stt.stub, [cfg(interim_results=True), *audio(clip), fin("u")])
    interims = [r.result for r in rs if r.WhichOneof("msg") == "result" and not r.result.is_final]
    assert interims, "no interim results"
    assert len(interims) <= len(clip) / 16000 / 0.4 + 1
    assert all(not i.finalize_id for i in interims)
    assert rs[-1].result.finalize_id == "u" and rs[-1].result.from_finalize


async def test_other_sample_rates_are_resampled_and_offsets_stay_in_caller_samples() -> None:
    clip48k = resample(speech("goforward_16k.wav"), 16000, 48000)
    async with stt_server() as stt:
        rs = await run(stt.stub, [cfg(rate=48000), *audio(clip48k, offset=48000, chunk=1536), fin("u")])
    result = answers(rs)["u"]
    assert wer("go forward ten meters", result.text) <= 0.25, result.text
    assert result.start_offset_samples == 48000
    assert result.end_offset_samples == 48000 + len(clip48k)
    assert all(48000 < w.start_offset_samples < 48000 + len(clip48k) for w in result.words)


async def test_finalize_without_audio_is_answered_at_once_and_in_order() -> None:
    clip = speech("goforward_16k.wav")
    async with stt_server() as stt:
        rs = await run(stt.stub, [cfg(), fin("empty1"), *audio(clip), fin("speech"), fin("empty2")])
    finals = [r.result for r in rs if r.result.finalize_id]
    assert [f.finalize_id for f in finals] == ["empty1", "speech", "empty2"]
    assert finals[0].text == "" and finals[2].text == ""
    assert "forward" in finals[1].text


async def test_decoders_are_pooled_not_loaded_per_stream() -> None:
    clip = speech("goforward_16k.wav")
    async with stt_server({"STT_OFFLINE_MAX_DECODERS": "2"}) as stt:
        results = await asyncio.gather(*[run(stt.stub, [cfg(), *audio(clip), fin("u")]) for _ in range(4)])
        assert stt.pool.created <= 2
        assert stt.pool.in_use == 0
    assert all("forward" in answers(rs)["u"].text for rs in results)

