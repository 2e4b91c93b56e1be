"""A whole call with an aiortc client peer against media in-process and the fake orchestrator:
real Opus both ways, real speech, transcribed with the offline STT."""
from __future__ import annotations



from services.media.client import RATE, ClientPeer, WavTrack
from tests.fakes.session import GREETING, FakeSession, flite_speech
from tests.media.helpers import candidate_text, first_utterance, load_candidate, transcribe, until
from tests.support.wer import wer


async def test_greeting_heard_and_candidate_audio_reaches_the_orchestrator(media, fake: FakeSession) -> None:
    iid, token = fake.create()
    samples, rate = load_candidate()
    client = ClientPeer(media.url, iid, WavTrack(samples, rate, lead_silence_s=7.5), token=token)
    try:
        answer = await client.connect()
        assert answer["credential"].startswith("sc_")
        assert await client.wait_connected(5) < 5
        rec = await fake.wait_session()
        assert rec.join.join_token == token and rec.join.audio_format.sample_rate_hz == 16000
        # the greeting plays in full and is reported finished
        await until(lambda: any(m.generation_id == "greeting" and m.finished for m in rec.marks), timeout=15)
        # the candidate's speech arrives as 16 kHz 32 ms chunks on a gapless timeline
        await until(lambda: len(rec.audio) * 512 >= 16000 * (7.5 + len(samples) / rate + 0.3), timeout=20)
        offsets = sorted(rec.audio)
        assert all(len(rec.audio[o]) == 1024 for o in offsets)
        assert offsets == list(range(0, 512 * len(offsets), 512))
        # media decodes the candidate's Opus on its loop: aiortc's decoder thread for it idles
        (peer,) = media.gateway.peers.values()
        (receiver,) = [t.receiver for t in peer.pc.getTransceivers() if t.kind == "audio"]
        assert type(receiver._RTCRtpReceiver__decoder_queue).__name__ == "_LoopDecoder"
        assert receiver._RTCRtpReceiver__decoder_queue.decoded > 100
        events = {e["type"] for e in client.events}
        assert {"policy", "state", "caption", "speaking"} <= events
    finally:
        await client.hangup()
    heard = client.heard.signal()
    greeting_text = transcribe(first_utterance(heard, RATE), RATE)
    assert wer(GREETING, greeting_text) <= 0.15, greeting_text
    said = transcribe(rec.candidate_audio(), 16000)
    assert wer(candidate_text(), said) <= 0.35, said
    await until(lambda: rec.ended.is_set(), timeout=5)
    assert rec.leave == "hangup"
    final = [m for m in rec.marks if m.generation_id == "greeting" and m.finished][0]
    assert abs(final.samples_played - len(flite_speech(GREETING))) < 24
