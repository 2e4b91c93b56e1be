import io
import json
import logging

from services.common import logs


def _capture() -> io.StringIO:
    buf = io.StringIO()
    logs.setup("testsvc", "INFO", stream=buf)
    return buf


def test_one_json_object_per_line_with_context_ids():
    buf = _capture()
    log = logging.getLogger("component.x")
    with logs.bind(interview_id="iv-1"):
        with logs.bind(session_id="s-9"):
            log.info("hello", extra={"latency_ms": 12.5})
        log.warning("after")
    log.info("outside")
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert lines[0] == {**lines[0], "service": "testsvc", "component": "component.x", "msg": "hello",
                        "interview_id": "iv-1", "session_id": "s-9", "latency_ms": 12.5, "level": "info"}
    assert lines[1]["interview_id"] == "iv-1" and "session_id" not in lines[1]
    assert "interview_id" not in lines[2]
    assert lines[0]["ts"].endswith("+00:00")


def test_tokens_and_secrets_are_redacted():
    buf = _capture()
    logs.register_secret("sk-live-abcdef123")
    log = logging.getLogger("t")
    log.info("GET /join?token=eyJhbGciOiJIUzI1NiJ9.eyJpbnRlcnZpZXcifQ.sig&x=1")
    log.info("authorization: Bearer abc.def.ghi")
    log.info("provider said key sk-live-abcdef123 is bad")
    out = buf.getvalue()
    assert "eyJhbGci" not in out and "abc.def.ghi" not in out and "sk-live-abcdef123" not in out
    assert out.count("<redacted>") >= 3


def test_exceptions_are_logged_as_one_line():
    buf = _capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("t").exception("failed")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and "ValueError: boom" in json.loads(lines[0])["exc"]


async def test_bind_survives_a_generator_finalised_in_another_task():
    import asyncio

    async def handler():
        with logs.bind(stream_id="s1"):
            yield logs.bound()
            yield logs.bound()

    gen = handler()
    assert (await gen.__anext__())["stream_id"] == "s1"
    # grpc finalises a cancelled handler from another task (another context): no ValueError
    await asyncio.create_task(gen.aclose())
