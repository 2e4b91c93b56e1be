"""CreateInterview refuses a language or voice the STT/TTS services cannot serve (INVALID_ARGUMENT
naming the field and listing what they support), learned from their Capabilities calls; with the
services down it uses their last answer, and accepts unchecked (with a warning) if it never had
one. Real orchestrator, stt (pocketsphinx) and tts (flite / espeak-ng) processes."""
from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from interview.v1 import interviews_pb2
from services.orchestrator.api.client import InterviewsClient
from tests.orchestrator.conftest import API_KEY, orchestrator_env
from tests.support.procs import RedisServer, ServiceProcess

Config = interviews_pb2.InterviewConfig
FAST = {"ORCHESTRATOR_CAPABILITIES_REFRESH_S": "1", "ORCHESTRATOR_CAPABILITIES_RETRY_S": "0.2"}


@pytest.fixture(scope="module")
def checked(redis_server: RedisServer, prefix: str, ai: dict[str, ServiceProcess]) -> Iterator[ServiceProcess]:
    env = orchestrator_env(redis_server.url, prefix, ORCHESTRATOR_EVALUATION_WORKERS="0",
                           STT_ADDR=ai["stt"].address, TTS_ADDR=ai["tts"].address)
    with ServiceProcess("orchestrator", env=env) as proc:
        yield proc


async def refused(address: str, config: Config) -> grpc.aio.AioRpcError:
    async with InterviewsClient(address, API_KEY) as c:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await c.create(template="demo", config=config)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return info.value


async def accepted(address: str, config: Config) -> None:
    async with InterviewsClient(address, API_KEY) as c:
        created = await c.create(template="demo", config=config)
    assert created.interview.config.language == config.language


async def test_an_unsupported_language_is_refused_listing_what_stt_supports(checked: ServiceProcess) -> None:
    error = await refused(checked.address, Config(language="xx-XX"))
    assert error.details().startswith("config.language: 'xx-XX' is not recognised by the speech-to-text service")
    assert "offline: en-US" in error.details()
    error = await refused(checked.address, Config(language="fr-FR"))  # espeak-ng speaks it; pocketsphinx does not
    assert "speech-to-text" in error.details() and "en-US" in error.details()


async def test_an_unknown_voice_is_refused_listing_the_voices(checked: ServiceProcess) -> None:
    error = await refused(checked.address, Config(tts_voice="nobody"))
    assert error.details().startswith("config.tts_voice: unknown voice 'nobody'; the voices are offline: rms")
    assert "espeak-ng" in error.details()


async def test_supported_values_are_accepted_in_any_case(checked: ServiceProcess) -> None:
    for config in (Config(language="en-us", tts_voice="slt"), Config(language="EN-US"), Config(language="en"),
                   Config(tts_voice="espeak-ng"), Config()):
        await accepted(checked.address, config)


def wait_for_log(proc: ServiceProcess, text: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in proc.logs():
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{proc.logs()[-2000:]}"
        time.sleep(0.1)


async def test_tts_never_known_then_known_then_down(redis_server: RedisServer, prefix: str,
                                                   ai: dict[str, ServiceProcess]) -> None:
    """One orchestrator whose TTS starts after it and stops again: unchecked, checked, last answer."""
    tts = ServiceProcess("tts", env={"TTS_PROVIDERS": "offline"})
    env = orchestrator_env(redis_server.url, prefix, ORCHESTRATOR_EVALUATION_WORKERS="0",
                           STT_ADDR=ai["stt"].address, TTS_ADDR=tts.address, **FAST)
    with ServiceProcess("orchestrator", env=env) as orch:
        await accepted(orch.address, Config(tts_voice="nobody"))  # never known: accepted, with a warning
        assert "not checked against tts: its capabilities were never known" in orch.logs()
        await refused(orch.address, Config(language="xx-XX"))  # STT answered all along
        with tts:
            wait_for_log(orch, '"msg": "tts capabilities"')  # the answer arrived (retried every 0.2 s)
            await refused(orch.address, Config(tts_voice="nobody"))
        wait_for_log(orch, "using its answer from")  # TTS is down: a refresh failed, its last answer stays
        error = await refused(orch.address, Config(tts_voice="nobody"))
        assert "offline: rms" in error.details()
        await accepted(orch.address, Config(language="en-US", tts_voice="rms"))
