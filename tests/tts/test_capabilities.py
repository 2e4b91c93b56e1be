"""Tts.Capabilities: the voices actually installed (flite -lv, espeak-ng) and their languages,
Cartesia's documented languages with any voice id; and a stream starting on the provider that
has its voice."""
from __future__ import annotations

import subprocess

from interview.v1 import common_pb2, tts_pb2


def installed_flite_voices() -> set[str]:
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=10).stdout
    return {v for v in out.partition(":")[2].split() if not v.endswith("_time")}


async def test_offline_lists_the_installed_voices_and_their_languages(tts_server) -> None:
    stub = await tts_server(TTS_PROVIDERS="offline")
    answer = await stub.Capabilities(common_pb2.CapabilitiesRequest(), timeout=5)
    caps = {p.provider: p for p in answer.providers}
    offline = caps["offline"]
    assert offline.available and set(offline.voices) == installed_flite_voices() | {"espeak-ng"}
    assert "awb_time" not in offline.voices  # a limited-domain voice: it only says the time
    assert {"en", "en-US", "en-GB", "fr-FR", "de"} <= set(offline.languages)
    assert not caps["cartesia"].available  # not in TTS_PROVIDERS


async def test_cartesia_takes_any_voice_id_and_a_named_offline_voice_starts_offline(tts_server) -> None:
    stub = await tts_server(TTS_PROVIDERS="cartesia,offline", CARTESIA_API_KEY="k",
                            TTS_CARTESIA_BASE_URL="http://127.0.0.1:9")
    answer = await stub.Capabilities(common_pb2.CapabilitiesRequest(), timeout=5)
    cartesia = answer.providers[0]
    assert cartesia.provider == "cartesia" and cartesia.available
    assert list(cartesia.voices) == [] and {"en", "ja", "fr"} <= set(cartesia.languages)
    check = stub.servicer.check  # type: ignore[attr-defined]
    assert check(tts_pb2.TtsConfig(voice="slt"))[1] == "offline"  # listed by name offline: no Cartesia round trip
    assert check(tts_pb2.TtsConfig(voice="a0e99841-438c-4a64-b679-ae501e7d6091"))[1] is None  # the chain: Cartesia
