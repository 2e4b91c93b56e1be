"""The offline voice end to end through the gRPC service: intelligible, streaming, resampled."""
from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from pocketsphinx import Decoder

from interview.v1 import tts_pb2
from services.common.audio import resample
from services.tts.segmenter import Segmenter
from tests.support.wer import wer
from tests.tts.conftest import audio_of, collect, done_of, request_stream

# What the interviewer says in every interview (greeting, prompts, transitions, wrap-up).
INTERVIEWER_SENTENCES = [
    "Hello, thanks for joining me today.",
    "Let's start with a quick introduction.",
    "Can you tell me about a project you are proud of?",
    "What was the hardest part of that work?",
    "How would you design a system that handles millions of requests?",
    "Take your time and think out loud if you like.",
    "What is the time complexity of this approach?",
    "Do you have any questions for me?",
    "Thank you for your time today.",
]


def transcribe(samples_16k: np.ndarray, decoder: Decoder) -> str:
    decoder.start_utt()
    decoder.process_raw(samples_16k.astype("<i2").tobytes(), full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr if decoder.hyp() else ""


async def test_offline_voice_is_intelligible(tts_server) -> None:
    """flite (default voice) at 24 kHz -> 16 kHz -> pocketsphinx: WER <= 0.08 over the sentences."""
    stub = await tts_server()
    decoder = Decoder(samprate=16000)
    errors = words = 0
    misheard = []
    for sentence in INTERVIEWER_SENTENCES:
        responses = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(sample_rate_hz=24000), [sentence])))
        audio = audio_of(responses)
        assert len(audio) / 24000 > 0.5
        hyp = await asyncio.to_thread(transcribe, resample(audio, 24000, 16000), decoder)
        n = len(sentence.split())
        errors += round(wer(sentence, hyp) * n)
        words += n
        if hyp.lower() != sentence.lower().strip(".?").replace(",", ""):
            misheard.append((sentence, hyp))
    assert errors / words <= 0.08, misheard


async def _timed_tokens(text: str, every_s: float, sent: dict[str, float]) -> AsyncIterator[tts_pb2.SynthesizeRequest]:
    """Token-by-token text like an LLM's; records when the first piece became complete."""
    seg = Segmenter()
    yield tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig(generation_id="g1"))
    tokens = [" " + w for w in text.split(" ")]
    tokens[0] = tokens[0].lstrip()
    for token in tokens:
        await asyncio.sleep(every_s)
        yield tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(text=token))
        if seg.push(token) and "first_piece" not in sent:
            sent["first_piece"] = time.monotonic()
    sent["last_token"] = time.monotonic()
    yield tts_pb2.SynthesizeRequest(end=tts_pb2.EndOfText())


async def test_first_audio_comes_while_text_still_arrives(tts_server) -> None:
    """Time to first audio <= 150 ms after the first speakable piece (median of 3 utterances)."""
    stub = await tts_server()
    text = ("Great, thanks for walking me through that. Now let's move on to the coding part of the interview, "
            "where I will give you a problem and you can think out loud.")
    ttfa, baseline = [], []
    for _ in range(3):
        baseline.append(await _flite_alone("Great, thanks for walking me through that."))
        sent: dict[str, float] = {}
        first_audio = None
        responses = []
        async for r in stub.Synthesize(_timed_tokens(text, 0.03, sent)):
            if r.WhichOneof("msg") == "audio" and first_audio is None:
                first_audio = time.monotonic()
            responses.append(r)
        assert first_audio is not None and first_audio < sent["last_token"], "first audio only after the whole text"
        ttfa.append(first_audio - sent["first_piece"])
        assert responses[0].audio.text == "Great, thanks for walking me through that."
        assert done_of(responses).segments == 2
    # The machine is shared (other test suites run beside this one): flite itself is timed on the
    # same piece just before each utterance, and under contention the service may take 1.5x that
    # plus 50 ms (gRPC hops, resampling, the Python around it slow down like flite does). On an
    # idle machine flite takes ~50 ms and the bound is the requirement, 150 ms.
    bound = max(0.150, 1.5 * statistics.median(baseline) + 0.050)
    assert statistics.median(ttfa) <= bound, (ttfa, baseline)


async def _flite_alone(text: str) -> float:
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec("flite", "-voice", "rms", "-t", text, "-o", "/dev/stdout",
                                                stdout=asyncio.subprocess.PIPE)
    await proc.communicate()
    return time.monotonic() - start


async def test_chunks_are_tagged_and_contiguous(tts_server) -> None:
    stub = await tts_server(TTS_CHUNK_MS="40")
    responses = await collect(stub.Synthesize(request_stream(
        tts_pb2.TtsConfig(sample_rate_hz=16000, generation_id="gen-7"), ["One sentence here. ", "And a second one."])))
    chunks = [r.audio for r in responses if r.WhichOneof("msg") == "audio"]
    offset = 0
    for c in chunks:
        assert c.offset_samples == offset and c.sample_rate_hz == 16000 and c.generation_id == "gen-7"
        assert len(c.pcm) <= 640 * 2
        offset += len(c.pcm) // 2
    tagged = [(c.segment_index, c.text) for c in chunks if c.text]
    assert tagged == [(0, "One sentence here."), (1, "And a second one.")]
    done = done_of(responses)
    assert done.total_samples == offset and done.segments == 2 and done.provider == "offline"
    assert done.spoken_text == "One sentence here. And a second one."


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_output_is_resampled_to_the_requested_rate(tts_server, rate: int) -> None:
    stub = await tts_server()
    base = audio_of(await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(sample_rate_hz=16000), ["Hello there."]))))
    other = audio_of(await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(sample_rate_hz=rate), ["Hello there."]))))
    assert abs(len(other) / rate - len(base) / 16000) < 0.01
    assert np.abs(other).max() > 1000  # real speech, not silence


async def test_markdown_is_not_read_out(tts_server) -> None:
    stub = await tts_server()
    responses = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["**Great!** See ", "`code`:\n```\nx=1\n```\n"])))
    assert done_of(responses).spoken_text == "Great! See code:"


async def test_flush_speaks_without_a_sentence_end(tts_server) -> None:
    stub = await tts_server()

    async def requests() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
        yield tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig())
        yield tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(text="Hmm let me think"))
        yield tts_pb2.SynthesizeRequest(flush=tts_pb2.Flush())
        await got_audio.wait()  # the flushed text is spoken before any more text or the end
        yield tts_pb2.SynthesizeRequest(end=tts_pb2.EndOfText())

    got_audio = asyncio.Event()
    responses = []
    async for r in stub.Synthesize(requests()):
        responses.append(r)
        got_audio.set()
    assert done_of(responses).spoken_text == "Hmm let me think"


async def test_other_languages_and_voices(tts_server) -> None:
    stub = await tts_server()
    for cfg in (tts_pb2.TtsConfig(language="fr"), tts_pb2.TtsConfig(voice="slt"), tts_pb2.TtsConfig(voice="espeak-ng")):
        responses = await collect(stub.Synthesize(request_stream(cfg, ["Bonjour, merci."])))
        assert len(audio_of(responses)) > 24000 * 0.3, cfg


async def test_config_and_end_only_is_an_empty_utterance(tts_server) -> None:
    stub = await tts_server()
    responses = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), [])))
    assert len(responses) == 1 and done_of(responses).segments == 0
