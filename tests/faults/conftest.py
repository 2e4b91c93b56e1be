"""The orchestrator fault suite: real processes (redis-server, vad, stt, llm, tts, video, orchestrator),
one fault each. `make test` runs each once; `make faults` repeats them (FAULT_RUNS) and appends
every measurement to FAULT_RESULTS (JSON lines) for docs/reliability.md."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from tests.orchestrator.conftest import orchestrator_env
from tests.support.procs import RedisServer, ServiceProcess

RUNS = int(os.environ.get("FAULT_RUNS", "1"))


def record(fault: str, **measured: float | int | str) -> None:
    """One run's numbers: printed, and appended to FAULT_RESULTS when set."""
    row = {"fault": fault, "at": round(time.time(), 3), **measured}
    print(json.dumps(row))
    path = os.environ.get("FAULT_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "run" in metafunc.fixturenames:
        metafunc.parametrize("run", range(RUNS))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess | RedisServer]]:
    """Its own Redis and AI services (the faults kill them), and one orchestrator."""
    redis = RedisServer().start()
    procs: dict[str, ServiceProcess | RedisServer] = {"redis": redis}
    try:
        for name, env in (("vad", {}), ("stt", {}), ("llm", {}), ("tts", {"TTS_PROVIDERS": "offline"}),
                          ("video", {"VIDEO_PROVIDERS": "offline", "VIDEO_OCR_MIN_INTERVAL_S": "1"})):
            procs[name] = ServiceProcess(name, env=env).start()
        env = orchestrator_env(redis.url, "faults:", **{f"{k.upper()}_ADDR": p.address for k, p in procs.items()
                                                        if k != "redis"},
                               ORCHESTRATOR_COMMANDS="false",
                               ORCHESTRATOR_SPILL_PATH=str(tmp_path_factory.mktemp("spill") / "spill.bin"))
        procs["orchestrator"] = ServiceProcess("orchestrator", env=env).start()
        yield procs
    finally:
        for p in procs.values():
            if isinstance(p, ServiceProcess):
                p.kill()
        procs["redis"].stop()  # type: ignore[union-attr]
