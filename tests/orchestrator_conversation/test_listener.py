"""The Listener's decisions from what the VAD and STT say: typed events only, the VAD's applied
params trusted (no guessed thresholds), windows measured at the stream's own rate."""
from __future__ import annotations

import numpy as np
import pytest

from interview.v1 import common_pb2, stt_pb2, vad_pb2
from services.common.clock import FakeClock
from services.orchestrator.conversation.heard import EarlySpeech, Final, Heard, Interim, SpeechStarted, SpeechStopped
from services.orchestrator.conversation.listener import Listener, SessionFailed


class Recorder:
    def __init__(self) -> None:
        self.events: list[Heard] = []

    def heard(self, event: Heard) -> None:
        self.events.append(event)


def listener(rate: int = 16000) -> tuple[Listener, Recorder]:
    hooks = Recorder()
    return Listener(vad_stub=None, stt_stub=None, hooks=hooks, clock=FakeClock(), input_rate=rate, stream_id="s_1",
                    stt_provider="", language="en-US", pre_roll_ms=500, early_pause_ms=128,
                    params=common_pb2.VadParams(min_silence_ms=1200), trace_attributes={}), hooks


def applied(**params: float) -> vad_pb2.DetectResponse:
    return vad_pb2.DetectResponse(params_applied=vad_pb2.VadParamsApplied(params=common_pb2.VadParams(**params)))


def prob(end: int, p: float) -> vad_pb2.DetectResponse:
    return vad_pb2.DetectResponse(probability=vad_pb2.VadProbability(window_end_samples=end, probability=p))


async def windows(lis: Listener, window: int, probabilities: list[float], start: int = 0) -> None:
    for i, p in enumerate(probabilities):
        await lis._on_vad(prob(start + (i + 1) * window, p))


@pytest.mark.parametrize(("rate", "window"), [(16000, 512), (8000, 256)])
async def test_early_speech_after_pause_ms_of_voiced_windows_at_the_streams_rate(rate: int, window: int) -> None:
    lis, hooks = listener(rate)
    await lis._on_vad(applied(activation_threshold=0.5, min_speech_ms=300))
    await windows(lis, window, [0.1, 0.9, 0.9, 0.9])  # 3 voiced windows: 96 ms
    assert hooks.events == []
    await windows(lis, window, [0.9], start=4 * window)  # 128 ms
    assert hooks.events == [EarlySpeech(in_utterance=False, confirm_within_s=pytest.approx(0.55))]


async def test_nothing_early_until_the_vad_says_which_params_it_applied() -> None:
    lis, hooks = listener()
    lis.audio(common_pb2.AudioChunk(pcm=np.zeros(512 * 20, np.int16).tobytes(), offset_samples=0))
    await windows(lis, 512, [0.99] * 20)
    assert hooks.events == [] and not lis.voiced_recently()


async def test_the_applied_threshold_decides_what_is_voiced() -> None:
    lis, hooks = listener()
    await lis._on_vad(applied(activation_threshold=0.7, min_speech_ms=250))
    await windows(lis, 512, [0.6] * 10)
    assert hooks.events == []
    await lis._on_vad(applied(activation_threshold=0.5, min_speech_ms=250))  # a mode change lowered it
    await windows(lis, 512, [0.6] * 4, start=10 * 512)
    assert [type(e) for e in hooks.events] == [EarlySpeech]


async def test_voiced_recently_counts_the_window_not_yet_scored() -> None:
    lis, _ = listener()
    await lis._on_vad(applied(activation_threshold=0.5, min_speech_ms=250))
    lis.audio(common_pb2.AudioChunk(pcm=np.zeros(512 * 3, np.int16).tobytes(), offset_samples=0))
    await windows(lis, 512, [0.1, 0.9])  # voiced up to 1024; audio to 1536
    assert lis.voiced_recently()
    lis.audio(common_pb2.AudioChunk(pcm=np.zeros(4000, np.int16).tobytes(), offset_samples=1536))
    assert lis.voiced_recently()  # 4512 samples after the last voiced window: 250 ms + one window
    lis.audio(common_pb2.AudioChunk(pcm=np.zeros(1, np.int16).tobytes(), offset_samples=5536))
    assert not lis.voiced_recently()


async def test_an_utterance_is_reported_as_events_with_a_finalize_id() -> None:
    lis, hooks = listener()
    await lis._on_vad(vad_pb2.DetectResponse(event=vad_pb2.VadEvent(type=vad_pb2.SPEECH_STARTED, offset_samples=800)))
    await lis._on_stt(stt_pb2.RecognizeResponse(result=stt_pb2.SttResult(text=" hello ")))
    assert lis.in_progress() == ("hello", lis.utterance_start_time, 1)
    await lis._on_vad(vad_pb2.DetectResponse(event=vad_pb2.VadEvent(type=vad_pb2.SPEECH_STOPPED)))
    assert lis.finalizing == ["s_1-f1"] and not lis.speaking
    await lis._on_stt(stt_pb2.RecognizeResponse(result=stt_pb2.SttResult(text="hello there", is_final=True,
                                                                         finalize_id="s_1-f1", confidence=0.5)))
    started, interim, stopped, final = hooks.events
    assert started == SpeechStarted(800) and interim == Interim("hello", False)
    assert isinstance(stopped, SpeechStopped) and final == Final("hello there", "s_1-f1", 0.5, 2)
    assert lis.finalizing == []


async def test_bad_audio_is_refused_with_invalid_argument() -> None:
    lis, _ = listener()
    with pytest.raises(SessionFailed, match="even number of bytes") as odd:
        lis.audio(common_pb2.AudioChunk(pcm=b"\x00" * 3, offset_samples=0))
    assert odd.value.code.name == "INVALID_ARGUMENT"
    lis.audio(common_pb2.AudioChunk(pcm=b"\x00" * 4, offset_samples=100))
    with pytest.raises(SessionFailed, match="went backwards"):
        lis.audio(common_pb2.AudioChunk(pcm=b"\x00" * 4, offset_samples=50))


def started() -> vad_pb2.DetectResponse:
    return vad_pb2.DetectResponse(event=vad_pb2.VadEvent(type=vad_pb2.SPEECH_STARTED, offset_samples=0))


def stopped() -> vad_pb2.DetectResponse:
    return vad_pb2.DetectResponse(event=vad_pb2.VadEvent(type=vad_pb2.SPEECH_STOPPED))


def answer(fid: str, text: str = "") -> stt_pb2.RecognizeResponse:
    return stt_pb2.RecognizeResponse(result=stt_pb2.SttResult(text=text, is_final=True, finalize_id=fid))


async def test_pending_finalizes_are_bounded_and_held_back_ones_coalesce() -> None:
    """STT not answering: at most MAX_FINALIZES are sent; later ones wait, the newest standing for
    all of them; an answer frees a slot and sends it, and its answer answers the replaced ones too."""
    from services.orchestrator.conversation.finalizes import MAX_FINALIZES
    lis, hooks = listener()
    sent: list[str] = []
    lis.stt.send = lambda req: sent.append(req.finalize.finalize_id)  # type: ignore[method-assign]
    for _ in range(MAX_FINALIZES + 3):  # utterances STT does not answer
        await lis._on_vad(started())
        await lis._on_vad(stopped())
    ids = [f"s_1-f{i}" for i in range(1, MAX_FINALIZES + 4)]
    assert sent == ids[:MAX_FINALIZES]
    assert lis.finalizing == ids[:MAX_FINALIZES] + [ids[-1]] and lis.finalizes.coalesced == 2
    await lis._on_stt(answer(ids[0], "one"))
    assert sent == ids[:MAX_FINALIZES] + [ids[-1]]  # the held one takes the freed slot
    assert lis.finalizing == ids[1:MAX_FINALIZES] + [ids[-1]]
    for fid in ids[1:MAX_FINALIZES]:
        await lis._on_stt(answer(fid))
    await lis._on_stt(answer(ids[-1], "the rest"))
    assert lis.finalizing == []
    finals = [e for e in hooks.events if isinstance(e, Final)]
    assert finals[-1] == Final("the rest", ids[-1], words=2, covers=tuple(ids[MAX_FINALIZES:-1]))


async def test_a_reopened_stt_stream_gets_only_the_sent_finalizes_again() -> None:
    from services.orchestrator.conversation.finalizes import MAX_FINALIZES
    lis, _ = listener()
    sent: list[str] = []
    lis.stt.send = lambda req: sent.append(req.finalize.finalize_id)  # type: ignore[method-assign]
    for _ in range(MAX_FINALIZES + 1):
        await lis._on_vad(started())
        await lis._on_vad(stopped())
    sent.clear()
    await lis._on_stt_reopen()
    assert sent == [f"s_1-f{i}" for i in range(1, MAX_FINALIZES + 1)]


def test_a_coalesced_pause_is_decided_by_the_finalize_that_covers_it() -> None:
    from services.orchestrator.conversation.end_of_turn import EndOfTurn
    from services.orchestrator.conversation.heard import TurnPaused
    commits: list[bool] = []
    eot = EndOfTurn(FakeClock(), lambda: commits.append(True))
    eot.configure(True, eot.cfg, "en")
    eot.paused(TurnPaused(0.99, 300, 10.0, "s_1-f5", common_pb2.TraceContext(), None))
    eot.finalized("s_1-f6", "I think that is all.")
    assert not commits
    eot.finalized("s_1-f6", "I think that is all.", covers=("s_1-f5",))
    assert commits == [True]


async def test_a_reopened_stt_stream_is_re_sent_the_audio_it_owes_words_for_then_the_finalizes() -> None:
    """Audio of answered utterances and answered pieces is not sent again (no word twice); the
    rest of the utterance whose FINALIZE is unanswered is, before that FINALIZE."""
    lis, _ = listener()
    sent: list[tuple[str, int, int]] = []
    lis.stt.send = lambda req: sent.append(("finalize", 0, 0))  # type: ignore[method-assign]
    lis.stt.send_audio = lambda req: sent.append(  # type: ignore[method-assign]
        ("audio", req.audio.offset_samples, len(req.audio.pcm) // 2)) or False  # the stream is down

    def audio_to(end: int) -> None:
        while lis._audio_end < end:
            lis.audio(common_pb2.AudioChunk(pcm=b"\x01\x00" * 512, offset_samples=max(lis._audio_end, 0)))

    audio_to(16000)
    await lis._on_vad(started())
    audio_to(32000)
    await lis._on_vad(stopped())
    await lis._on_stt(answer("s_1-f1", "first answer"))
    assert lis.finalizes.replay_from() is None  # all answered: nothing owed
    second = lis._audio_end + 8000
    audio_to(second)
    await lis._on_vad(vad_pb2.DetectResponse(event=vad_pb2.VadEvent(type=vad_pb2.SPEECH_STARTED, offset_samples=second)))
    audio_to(second + 16000)
    lis._finalize()  # a pause's piece ...
    piece_end = lis._audio_end
    await lis._on_stt(answer("s_1-f2", "a piece"))  # ... answered
    audio_to(second + 40000)
    await lis._on_vad(stopped())  # its last FINALIZE is lost with the stream
    sent.clear()
    await lis._on_stt_reopen()
    assert sent[0] == ("audio", piece_end, lis._audio_end - piece_end) and sent[1:] == [("finalize", 0, 0)]
