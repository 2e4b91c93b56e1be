"""Lightweight grpc.aio fakes of the Vad, Stt, Llm and Tts services, speaking the real contracts,
with fixed injected latencies: what the orchestrator's session benchmark measures its own overhead
against (`python -m tests.fakes.ai_services --port P --stt-finalize-ms 100 ...`).

- Vad: an energy detector on the caller's chunks (`voiced`: chunk RMS above a threshold) with the
  stream's min_silence_ms; SPEECH_STOPPED is decided on the first chunk that completes min_silence
  after the last voiced chunk, so a caller who knows where its speech ends (by the same rule) knows
  exactly when a perfect VAD would stop. Emits one probability per 512 samples when asked (as the
  real VAD does), so the orchestrator's per-session message load is realistic.
  With `turn_probability` set (`--turn-probability`) and the stream's params asking for
  turn_scoring, it scores each pause of turn_pause_ms inside speech with that fixed probability
  (a TurnScore, as the real VAD sends) — a stand-in for the end-of-turn model.
- Stt: answers FINALIZE with a final result after `stt_finalize_ms`: its one sentence if a voiced
  chunk came since the previous FINALIZE, else empty (as a real recogniser hears nothing in silence).
- Llm: first delta after `llm_first_token_ms`; echoes the candidate's last words.
- Tts: first audio `tts_first_audio_ms` after the first text; 100 ms of tone per text piece.

All latencies 0 = the "instant echo" stack.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import numpy as np

from interview.v1 import (common_pb2, llm_pb2, llm_pb2_grpc, stt_pb2, stt_pb2_grpc, tts_pb2, tts_pb2_grpc, vad_pb2,
                          vad_pb2_grpc)

VOICED_RMS = 300.0  # int16 RMS; the speech fixtures' pauses sit well under it, their words well over
WINDOW = 512  # the real VAD's window (16 kHz)


def voiced(samples: np.ndarray) -> bool:
    """The fake VAD's (and the benchmark's) definition of a speech chunk."""
    return bool(len(samples)) and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > VOICED_RMS


def speech_end(samples: np.ndarray, chunk: int) -> int:
    """End (in samples) of the last voiced `chunk`-sized frame of a clip (frames from its start)."""
    end = 0
    for i in range(0, len(samples), chunk):
        if voiced(samples[i:i + chunk]):
            end = min(len(samples), i + chunk)
    return end


@dataclass(frozen=True)
class Latencies:
    stt_finalize_ms: float = 0.0
    llm_first_token_ms: float = 0.0
    tts_first_audio_ms: float = 0.0
    turn_probability: float | None = None  # the fake end-of-turn model's answer (None: no model)


# What the real VAD reports in params_applied for params a stream leaves unset.
APPLIED_DEFAULTS = common_pb2.VadParams(activation_threshold=0.5, deactivation_threshold=0.35, min_speech_ms=250,
                                        min_silence_ms=1200, speech_pad_ms=30, turn_scoring=False, turn_pause_ms=200,
                                        turn_threshold=0.5)


class FakeVad(vad_pb2_grpc.VadServicer):
    def __init__(self, turn_probability: float | None = None):
        self.turn_probability = turn_probability

    async def Detect(self, request_iterator: AsyncIterator[vad_pb2.DetectRequest],
                     context: grpc.aio.ServicerContext) -> AsyncIterator[vad_pb2.DetectResponse]:
        min_silence = 16000 * 1200 // 1000
        rate = 16000
        probabilities = False
        speaking = False
        last_voiced_end = 0
        next_window = WINDOW
        params = common_pb2.VadParams()
        params.CopyFrom(APPLIED_DEFAULTS)
        scored = False  # this pause already has its TurnScore
        async for req in request_iterator:
            kind = req.WhichOneof("msg")
            if kind == "config":
                rate = req.config.sample_rate_hz or 16000
                probabilities = req.config.emit_probabilities
                if req.config.params.HasField("min_silence_ms"):
                    min_silence = rate * req.config.params.min_silence_ms // 1000
                params.MergeFrom(req.config.params)
                if problem := self._no_model(params):
                    yield problem
            elif kind == "params":
                if req.params.HasField("min_silence_ms"):
                    min_silence = rate * req.params.min_silence_ms // 1000
                params.MergeFrom(req.params)
                if problem := self._no_model(params):
                    yield problem
                yield vad_pb2.DetectResponse(params_applied=vad_pb2.VadParamsApplied(params=params))
            elif kind == "audio":
                samples = np.frombuffer(req.audio.pcm, dtype=np.int16)
                start, end = req.audio.offset_samples, req.audio.offset_samples + len(samples)
                is_voiced = voiced(samples)
                if probabilities:
                    while next_window <= end:
                        yield vad_pb2.DetectResponse(probability=vad_pb2.VadProbability(
                            window_end_samples=next_window, probability=0.9 if is_voiced else 0.05))
                        next_window += WINDOW
                if is_voiced:
                    last_voiced_end = end
                    scored = False
                    if not speaking:
                        speaking = True
                        yield vad_pb2.DetectResponse(event=vad_pb2.VadEvent(
                            type=vad_pb2.SPEECH_STARTED, offset_samples=start, decided_at_samples=end, probability=0.9))
                if (speaking and not is_voiced and not scored and params.turn_scoring
                        and self.turn_probability is not None
                        and end - last_voiced_end >= rate * params.turn_pause_ms // 1000):
                    scored = True
                    yield vad_pb2.DetectResponse(turn=vad_pb2.TurnScore(
                        probability=self.turn_probability, end_of_turn=self.turn_probability >= params.turn_threshold,
                        pause_start_samples=last_voiced_end, decided_at_samples=end,
                        pause_ms=(end - last_voiced_end) * 1000 // rate))
                if speaking and not is_voiced and end - last_voiced_end >= min_silence:
                    speaking = False
                    yield vad_pb2.DetectResponse(event=vad_pb2.VadEvent(
                        type=vad_pb2.SPEECH_STOPPED, offset_samples=last_voiced_end, decided_at_samples=end,
                        probability=0.05))


    def _no_model(self, params: common_pb2.VadParams) -> vad_pb2.DetectResponse | None:
        """Without a fake end-of-turn model, turn scoring is refused in-band, as the real VAD does
        when its model is missing (so the orchestrator stops waiting for scores)."""
        if not params.turn_scoring or self.turn_probability is not None:
            return None
        params.turn_scoring = False
        return vad_pb2.DetectResponse(problem=common_pb2.Problem(
            code=grpc.StatusCode.FAILED_PRECONDITION.value[0], field="turn_scoring",
            message="turn scoring is unavailable on this fake VAD (no turn probability configured)"))


class FakeStt(stt_pb2_grpc.SttServicer):
    TEXT = "i worked on a compiler"

    def __init__(self, latencies: Latencies):
        self.lat = latencies

    async def Capabilities(self, request: common_pb2.CapabilitiesRequest,
                           context: grpc.aio.ServicerContext) -> common_pb2.CapabilitiesResponse:
        """English only: its one transcript is English (so CreateInterview refuses other languages)."""
        return common_pb2.CapabilitiesResponse(providers=[common_pb2.ProviderCapabilities(
            provider="fake", languages=["en"], available=True)])

    async def Recognize(self, request_iterator: AsyncIterator[stt_pb2.RecognizeRequest],
                        context: grpc.aio.ServicerContext) -> AsyncIterator[stt_pb2.RecognizeResponse]:
        out: asyncio.Queue[stt_pb2.RecognizeResponse | None] = asyncio.Queue()
        pending: set[asyncio.Task[None]] = set()
        heard = [0, 0]  # first and last audio offsets since the previous final
        spoke = [False]  # a voiced chunk since the previous final

        async def finalize(fid: str, start: int, end: int, text: str) -> None:
            await asyncio.sleep(self.lat.stt_finalize_ms / 1000)
            await out.put(stt_pb2.RecognizeResponse(result=stt_pb2.SttResult(
                is_final=True, text=text, confidence=0.9, start_offset_samples=start, end_offset_samples=end,
                finalize_id=fid, from_finalize=True, provider="fake")))

        async def read() -> None:
            async for req in request_iterator:
                kind = req.WhichOneof("msg")
                if kind == "audio":
                    n = len(req.audio.pcm) // 2
                    if not heard[1]:
                        heard[0] = req.audio.offset_samples
                    heard[1] = req.audio.offset_samples + n
                    spoke[0] = spoke[0] or voiced(np.frombuffer(req.audio.pcm, dtype=np.int16))
                elif kind == "finalize":
                    task = asyncio.create_task(finalize(req.finalize.finalize_id, heard[0], heard[1],
                                                        self.TEXT if spoke[0] else ""))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    heard[:] = [0, 0]
                    spoke[0] = False
            await asyncio.gather(*pending)
            await out.put(None)

        reader = asyncio.create_task(read())
        try:
            while (resp := await out.get()) is not None:
                yield resp
        finally:
            reader.cancel()
            for t in list(pending):
                t.cancel()


class FakeLlm(llm_pb2_grpc.LlmServicer):
    def __init__(self, latencies: Latencies):
        self.lat = latencies

    async def Generate(self, request: llm_pb2.GenerateRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[llm_pb2.GenerateResponse]:
        await asyncio.sleep(self.lat.llm_first_token_ms / 1000)
        users = [m.text for m in request.history if m.role == common_pb2.ROLE_USER]
        pieces = ["You said: ", (users[-1] if users else "hello") + "."]
        if request.task == llm_pb2.TASK_GREETING:
            pieces = ["Hello, ", "welcome."]
        elif request.task == llm_pb2.TASK_RESUME:
            pieces = ["Welcome ", "back."]
        for piece in pieces:
            yield llm_pb2.GenerateResponse(delta=llm_pb2.TextDelta(text=piece))
        yield llm_pb2.GenerateResponse(final=llm_pb2.GenerateFinal(
            text="".join(pieces), finish_reason=llm_pb2.FINISH_STOP, provider="fake",
            time_to_first_token_ms=int(self.lat.llm_first_token_ms)))


class FakeTts(tts_pb2_grpc.TtsServicer):
    PIECE_S = 0.1

    def __init__(self, latencies: Latencies):
        self.lat = latencies

    async def Capabilities(self, request: common_pb2.CapabilitiesRequest,
                           context: grpc.aio.ServicerContext) -> common_pb2.CapabilitiesResponse:
        """Any voice, any language: the tone it plays does not depend on either."""
        return common_pb2.CapabilitiesResponse(providers=[common_pb2.ProviderCapabilities(
            provider="fake", available=True)])

    async def Synthesize(self, request_iterator: AsyncIterator[tts_pb2.SynthesizeRequest],
                         context: grpc.aio.ServicerContext) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        rate, gid, offset, segments, first = 24000, "", 0, 0, True
        spoken: list[str] = []
        async for req in request_iterator:
            kind = req.WhichOneof("msg")
            if kind == "config":
                rate, gid = req.config.sample_rate_hz or 24000, req.config.generation_id
            elif kind == "text" and req.text.text.strip():
                if first:
                    first = False
                    await asyncio.sleep(self.lat.tts_first_audio_ms / 1000)
                n = int(rate * self.PIECE_S)
                pcm = (np.sin(np.arange(n) * 2 * np.pi * 220 / rate) * 3000).astype(np.int16).tobytes()
                yield tts_pb2.SynthesizeResponse(audio=tts_pb2.SpeechChunk(
                    pcm=pcm, sample_rate_hz=rate, offset_samples=offset, text=req.text.text, segment_index=segments,
                    generation_id=gid))
                offset += n
                segments += 1
                spoken.append(req.text.text)
            elif kind == "end":
                break
        yield tts_pb2.SynthesizeResponse(done=tts_pb2.SynthesisDone(
            total_samples=offset, segments=segments, provider="fake", spoken_text="".join(spoken)))


def add_all(server: grpc.aio.Server, latencies: Latencies) -> None:
    vad_pb2_grpc.add_VadServicer_to_server(FakeVad(latencies.turn_probability), server)
    stt_pb2_grpc.add_SttServicer_to_server(FakeStt(latencies), server)
    llm_pb2_grpc.add_LlmServicer_to_server(FakeLlm(latencies), server)
    tts_pb2_grpc.add_TtsServicer_to_server(FakeTts(latencies), server)


async def serve(port: int, latencies: Latencies) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    add_all(server, latencies)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"PORT {bound}", flush=True)
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fakes.ai_services", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed as 'PORT n')")
    p.add_argument("--stt-finalize-ms", type=float, default=0.0)
    p.add_argument("--llm-first-token-ms", type=float, default=0.0)
    p.add_argument("--tts-first-audio-ms", type=float, default=0.0)
    p.add_argument("--turn-probability", type=float, default=None,
                   help="score each pause with this end-of-turn probability (default: no model)")
    a = p.parse_args(argv)
    try:
        asyncio.run(serve(a.port, Latencies(a.stt_finalize_ms, a.llm_first_token_ms, a.tts_first_audio_ms,
                                            a.turn_probability)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
