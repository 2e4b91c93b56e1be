import subprocess
import sys
from dataclasses import dataclass

import pytest

from services.common import config, logs
from services.common.config import ConfigError, env
from services.common.server import ServerSettings
from tests.support.procs import ROOT


@dataclass(frozen=True)
class Sample:
    server: ServerSettings
    required: int = env(help="something needed")
    api_key: str = env("", name="SAMPLE_API_KEY", secret=True)
    ratio: float = env(0.5, min=0.0, max=1.0)
    voices: tuple[str, ...] = env(("a",))
    flag: bool = env(False)


def test_loads_prefixed_and_named_variables():
    cfg = config.load(Sample, "svc", {"SVC_REQUIRED": "3", "SVC_PORT": "1234", "SVC_VOICES": "x, y",
                                      "SVC_FLAG": "yes", "SAMPLE_API_KEY": "k-123456", "LOG_LEVEL": "debug"})
    assert cfg.required == 3 and cfg.server.port == 1234 and cfg.voices == ("x", "y") and cfg.flag
    assert cfg.server.log_level == "DEBUG"
    assert "k-123456" not in repr(cfg)  # secrets hidden from repr
    assert logs.redact("key k-123456 leaked") == "key <redacted> leaked"  # and from logs


def test_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        config.load(Sample, "svc", {"SVC_PORT": "abc", "SVC_RATIO": "2", "SVC_FLAG": "maybe",
                                    "LOG_LEVEL": "loud"})
    problems = "\n".join(err.value.problems)
    for var in ("SVC_PORT", "SVC_RATIO", "SVC_FLAG", "LOG_LEVEL", "SVC_REQUIRED"):
        assert var in problems
    assert len(err.value.problems) == 5


def test_secret_values_never_echoed_in_errors():
    @dataclass(frozen=True)
    class S:
        n: int = env(0, name="SECRET_NUMBER", secret=True)

    with pytest.raises(ConfigError) as err:
        config.load(S, "", {"SECRET_NUMBER": "hunter2-secret"})
    assert "hunter2" not in str(err.value)


def test_service_exits_2_with_readable_list():
    proc = subprocess.run([sys.executable, "-m", "services.vad"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "VAD_PORT": "x", "VAD_MAX_STREAMS": "0"}, timeout=60)
    assert proc.returncode == 2
    assert "VAD_PORT: cannot parse 'x'" in proc.stderr and "VAD_MAX_STREAMS: 0 is below" in proc.stderr
