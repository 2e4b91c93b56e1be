"""Stt.Capabilities: what each configured provider recognises, as the orchestrator reads it, and
a stream with no provider named starting on one that has its language."""
from __future__ import annotations

from interview.v1 import common_pb2, stt_pb2
from services.stt.providers.deepgram import DOCUMENTED_LANGUAGES
from tests.stt.support import stt_server


async def test_offline_declares_its_installed_model_and_deepgram_unavailable_without_a_key() -> None:
    async with stt_server() as stt:
        answer = await stt.stub.Capabilities(common_pb2.CapabilitiesRequest(), timeout=5)
    caps = {p.provider: p for p in answer.providers}
    assert [p.provider for p in answer.providers] == ["deepgram", "offline"]  # failover order
    assert caps["offline"].available and list(caps["offline"].languages) == ["en-US"]  # pocketsphinx's en-us model
    assert not caps["deepgram"].available


async def test_deepgram_with_a_key_declares_its_models_languages_and_takes_a_stream_offline_cannot() -> None:
    env = {"DEEPGRAM_API_KEY": "k", "STT_DEEPGRAM_URL": "ws://127.0.0.1:9", "STT_DEFAULT_PROVIDER": "offline"}
    async with stt_server(env) as stt:
        answer = await stt.stub.Capabilities(common_pb2.CapabilitiesRequest(), timeout=5)
        deepgram = answer.providers[0]
        assert deepgram.provider == "deepgram" and deepgram.available
        assert list(deepgram.languages) == list(DOCUMENTED_LANGUAGES["nova-3"]) and "fr-CA" in deepgram.languages
        # the default (offline) lacks French: a stream that names no provider starts on deepgram
        assert stt.servicer._check_config(stt_pb2.SttConfig(sample_rate_hz=16000, language="fr")) == "deepgram"
        assert stt.servicer._check_config(stt_pb2.SttConfig(sample_rate_hz=16000, language="EN-us")) == "offline"
