"""Suite-wide fixtures and the `live` marker.

`@pytest.mark.live("DEEPGRAM_API_KEY")` marks a provider test that runs against the real cloud
when that key is set and is skipped otherwise; the same test body runs against our fake.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from services.common.clock import FakeClock
from tests.support.procs import RedisServer

os.environ.setdefault("OTEL_SDK_DISABLED", "true")

# Property-based tests (tests/fuzz): `make test` runs the derandomized "ci" profile (the same
# cases every run, so CI is deterministic); `make fuzz` runs "fuzz" (random, many more cases).
# HYPOTHESIS_PROFILE picks one; FUZZ_EXAMPLES overrides the number of cases per endpoint.
from hypothesis import HealthCheck, settings  # noqa: E402

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture, HealthCheck.large_base_example]
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")), suppress_health_check=_SLOW_OK)
settings.register_profile("fuzz", derandomize=False, deadline=None, print_blob=True,
                          max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1000")), suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("live"):
        var = marker.args[0] if marker.args else ""
        if not var or not os.environ.get(var):
            pytest.skip(f"live provider test: set {var or 'the API key'} to run it against the real service")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server (AOF on) for the session; tests use their own key prefixes or db."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


_DECODERS_AFTER: dict[str, list[str]] = {}  # test -> decoder threads alive after it (names + ids)


def _decoder_threads() -> list[str]:
    import threading

    return [f"{t.name}#{t.ident}" for t in threading.enumerate() if t.name.endswith("-decoder") and t.is_alive()]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    _DECODERS_AFTER[item.nodeid] = _decoder_threads()


def pytest_unconfigure(config: pytest.Config) -> None:
    """An aiortc peer connection left open keeps a non-daemon decoder thread per receiver, and the
    test process then never exits (CI would sit out its timeout). Say which test left it, and stop
    those threads the way aiortc's receiver does: None into the thread's input queue."""
    import sys
    import threading

    leftover = [t for t in threading.enumerate() if t.name.endswith("-decoder") and t.is_alive()]
    if not leftover:
        return
    first_seen = {next((test for test, alive in _DECODERS_AFTER.items() if f"{t.name}#{t.ident}" in alive), "?")
                  for t in leftover}
    print(f"\nWARNING: {len(leftover)} aiortc decoder thread(s) still running at exit (a peer connection "
          f"was not closed; first seen after: {sorted(first_seen)}); stopping them", file=sys.stderr)
    for t in leftover:
        args = getattr(t, "_args", ())  # decoder_worker(loop, input_q, output_q, ...)
        if len(args) > 1 and hasattr(args[1], "put"):
            args[1].put(None)
        t.join(2)


# A test marked flaky that failed once and then passed leaves no trace but an "R": say why it
# failed the first time, so CI logs show which bound a slow machine crossed.
_RERUNS: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome != "rerun":
        return
    errors = [line for line in report.longreprtext.splitlines() if line.startswith("E ")][:4]
    printed = [text for name, text in report.sections if name.startswith("Captured stdout")]
    _RERUNS.append("\n".join([report.nodeid, *errors, *(printed[-1].strip().splitlines()[-4:] if printed else [])]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _RERUNS:
        terminalreporter.section("first tries that failed (passed on the rerun)")
        for text in _RERUNS:
            terminalreporter.write_line(text)
