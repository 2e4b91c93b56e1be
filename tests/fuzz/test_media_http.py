"""Fuzzing media's HTTP endpoints through its real process: /i/{id}/offer (random JSON, mutated SDP
with real and bad join tokens, random headers incl. X-Forwarded-For and Content-Type, raw bytes,
oversized bodies), /i/{id}/hangup, /config.json, the page and unknown paths.

Invariant per case: an HTTP status the API documents (never 5xx other than 503 busy/draining),
errors as JSON with a readable sentence, the process alive, and a live candidate on the same
process (a WebRTC peer whose audio reaches the orchestrator) unaffected. The orchestrator is the
protocol-faithful fake (tests/fakes/session.py), served from a thread of this process.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from hypothesis import example, given, strategies as st

from services.media.client import ClientPeer, WavTrack
from tests.fakes.session import FakeSession, start_fake
from tests.fuzz.protofuzz import CASES, Canary
from tests.support.procs import MediaProcess

# aiortc in the canary's thread uses the `random` module while hypothesis draws: harmless here
pytestmark = [pytest.mark.timeout(600),
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")]

DOCUMENTED = {200, 400, 401, 403, 404, 405, 409, 410, 413, 415, 429, 503}


class FakeOrchestrator:
    """The fake Session server on its own event loop thread."""

    def __init__(self) -> None:
        self.fake = FakeSession(greeting=None)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True, name="fake-orchestrator")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.server, self.port = await start_fake(self.fake)
            self.ready.set()
            self.stopped = asyncio.Event()
            await self.stopped.wait()
            await self.server.stop(0)

        self.loop.run_until_complete(main())

    def __enter__(self) -> "FakeOrchestrator":
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(10)


@pytest.fixture(scope="module")
def media() -> Iterator[tuple[MediaProcess, FakeSession]]:
    with FakeOrchestrator() as orch:
        env = {"ORCHESTRATOR_ADDR": f"127.0.0.1:{orch.port}", "MEDIA_ICE_LOOPBACK_ONLY": "true",
               "MEDIA_ICE_TIMEOUT_S": "3", "MEDIA_OFFER_RATE_PER_MIN": "0",  # 429 would hide the deeper paths
               "MEDIA_ICE_SERVERS": "stun:stun.example.com:3478,turn:turn.example.com:3478",
               "MEDIA_TURN_SECRET": "fuzz-secret"}
        with MediaProcess("media", env=env) as proc:
            yield proc, orch.fake


def _valid_sdp() -> str:
    async def make() -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="sendonly")
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp
    return asyncio.run(make())


def _request(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _check(endpoint: str, proc: MediaProcess, status: int, body: bytes, api: bool) -> None:
    CASES[endpoint] += 1
    assert status in DOCUMENTED, f"{endpoint}: status {status}: {body[:300]!r}\n{proc.logs()[-3000:]}"
    if api and status >= 400:
        error = json.loads(body)["error"]
        assert isinstance(error, str) and len(error) >= 10, f"{endpoint}: unreadable error {body[:200]!r}"
    assert proc.proc.poll() is None, f"{endpoint}: media died: {proc.logs()[-3000:]}"


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                         max_size=4), max_leaves=12)
IIDS = st.one_of(st.sampled_from(["iv_x", "", "..", "%2e%2e", "a" * 129, "iv_" + "b" * 8, "%00", "ü"]),
                 st.text(max_size=30))
HEADERS = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                     "multipart/form-data; boundary=x", "garbage"]),
    "X-Forwarded-For": st.one_of(st.sampled_from(["1.2.3.4", "1.2.3.4, 5.6.7.8", "::1", "garbage", ",,,", ""]),
                                 st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40)),
    "Accept-Encoding": st.sampled_from(["gzip", "br", "identity", "*"]),
    "Origin": st.sampled_from(["https://evil.example", "null"]),
})


def _mutated_sdp(sdp: str) -> st.SearchStrategy[str]:
    lines = sdp.replace("\r\n", "\n").strip("\n").split("\n")

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        out = list(lines)
        for _ in range(draw(st.integers(0, 6))):
            op = draw(st.sampled_from(["drop", "dup", "garbage", "swap", "truncate"]))
            if not out:
                break
            i = draw(st.integers(0, len(out) - 1))
            if op == "drop":
                out.pop(i)
            elif op == "dup":
                out.insert(i, out[i])
            elif op == "garbage":
                out[i] = draw(st.sampled_from(["a=", "m=audio x", "c=IN IP4 999.1.1.1", "a=fingerprint:sha-256 zz",
                                               "a=rtpmap:111 opus/0/0", "a=ssrc:-1", "a=candidate:x"])) + \
                    draw(st.text(max_size=20))
            elif op == "swap":
                j = draw(st.integers(0, len(out) - 1))
                out[i], out[j] = out[j], out[i]
            else:
                out[i] = out[i][: draw(st.integers(0, len(out[i])))]
        return "\r\n".join(out) + "\r\n"

    return mutate()


def test_fuzz_media_http(media: tuple[MediaProcess, FakeSession]) -> None:
    proc, fake = media
    port = proc.port
    sdp = _valid_sdp()

    async def exchange() -> None:  # a candidate joins, its audio reaches the orchestrator, it hangs up
        iid, token = fake.create()
        tone = (np.sin(np.arange(48000 * 2) * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
        peer = ClientPeer(proc.url, iid, WavTrack(tone, 48000, loop=True), token=token)
        try:
            await peer.connect()
            await peer.wait_connected(10)
            rec = next(r for r in reversed(fake.sessions) if r.interview_id == iid)
            for _ in range(100):  # the fake's own thread fills rec.audio: copy its values at once
                if sum(len(p) for p in list(rec.audio.values())) > 16000:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the candidate's audio did not reach the orchestrator")
            await peer.hangup()
        finally:
            await peer.close()

    offer_bodies = st.one_of(
        JSON.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=300),
        st.tuples(st.sampled_from(["offer", "answer", None, 1]), st.one_of(_mutated_sdp(sdp), st.text(max_size=50)),
                  st.sampled_from(["real", "garbage", "", None, "expired"]), JSON, st.booleans()).map(
            lambda t: ("sdp", t)),
    )

    @given(iid=IIDS, body=offer_bodies, headers=HEADERS)
    @example(iid="iv_x", body=b"{" * 300_000, headers={})  # over the body limit
    @example(iid="iv_x", body=b'{"type": "offer", "sdp": "' + b"v=0\\r\\nm=audio " * 20_000 + b'"}', headers={})
    @example(iid="iv_x", body=("sdp", ("offer", sdp, "real", {}, True)), headers={"X-Forwarded-For": "1.2.3.4"})
    def offers(iid: str, body: object, headers: dict[str, str]) -> None:
        path = f"/i/{urllib.parse.quote(iid, safe='')}/offer"
        if isinstance(body, tuple):
            kind, sdp_text, token_kind, consent, with_info = body[1]
            real_iid, token = fake.create()
            if token_kind == "real":
                path = f"/i/{real_iid}/offer"
            payload: dict[str, object] = {"type": kind, "sdp": sdp_text, "consent": consent}
            if token_kind is not None:
                payload["token"] = {"real": token, "garbage": "jt1.nope.nope", "": "",
                                    "expired": fake.create(real_iid, ttl_s=-1)[1]}[token_kind]
            if with_info:
                payload["client_info"] = "x" * 1000
            raw = json.dumps(payload).encode()
        else:
            raw = body  # type: ignore[assignment]
        status, reply = _request(port, "POST", path, raw, {"Content-Type": "application/json", **headers})
        _check("media POST /i/{id}/offer", proc, status, reply, api=True)
        if status == 200:  # release the peer at once (it would only time out on ICE)
            peer_id = json.loads(reply)["peer_id"]
            status, reply = _request(port, "POST", path.replace("/offer", "/hangup"),
                                     json.dumps({"peer_id": peer_id, "reason": "hangup"}).encode(), {})
            assert status == 200, reply

    @given(iid=IIDS, body=st.one_of(JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=100)),
           headers=HEADERS)
    def hangups(iid: str, body: bytes, headers: dict[str, str]) -> None:
        status, reply = _request(port, "POST", f"/i/{urllib.parse.quote(iid, safe='')}/hangup", body, headers)
        _check("media POST /i/{id}/hangup", proc, status, reply, api=True)

    @given(query=st.one_of(st.text(max_size=40), st.sampled_from(["interview=iv_x", "interview=", "interview=%00",
                                                                   "interview=" + "a" * 500])), headers=HEADERS)
    def configs(query: str, headers: dict[str, str]) -> None:
        status, reply = _request(port, "GET", "/config.json?" + urllib.parse.quote(query, safe="=&"), None, headers)
        _check("media GET /config.json", proc, status, reply, api=False)
        assert status == 200 and b"fuzz-secret" not in reply

    @given(path=st.one_of(IIDS.map(lambda i: f"/i/{urllib.parse.quote(i, safe='')}"),
                          st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40).map(
                              lambda p: "/" + urllib.parse.quote(p, safe="/"))),
           method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    def pages(path: str, method: str) -> None:
        status, reply = _request(port, method, path, None, {})
        _check("media other paths", proc, status, reply, api=False)

    with Canary("media-peer", exchange, pause_s=0.2) as canary:
        for run in (offers, hangups, configs, pages):
            run()
    canary.assert_healthy()
    assert not fake.sessions or all(r.interview_id for r in fake.sessions)
