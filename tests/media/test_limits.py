"""Abuse limits on media's public endpoints: per-address rate limits (429 + Retry-After, forwarded-for
believed only from configured proxies), the peer cap under concurrent offers, and per-session
short-lived TURN credentials (coturn's shared-secret scheme)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from services.common.ratelimit import RateLimiter
from services.media.ratelimit import client_address, parse_networks
from tests.fakes.session import FakeSession


@pytest.fixture
def fake() -> FakeSession:
    return FakeSession(greeting=None)


async def _post(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=data, headers={"Content-Type": "application/json", **(headers or {})}) as r:
            return r.status, await r.json(content_type=None), dict(r.headers)


@pytest.mark.parametrize("media_env", [{"MEDIA_OFFER_RATE_PER_MIN": "6", "MEDIA_OFFER_BURST": "3"}])
async def test_offers_beyond_the_rate_get_429_with_retry_after(media, fake: FakeSession) -> None:
    iid, _ = fake.create()
    url = f"{media.url}/i/{iid}/offer"
    codes = [(await _post(url, b"not json"))[0] for _ in range(3)]
    assert codes == [400, 400, 400]  # within the burst: answered on their merits
    code, body, headers = await _post(url, b"not json")
    assert code == 429 and "too many attempts" in body["error"].lower()
    assert 1 <= int(headers["Retry-After"]) <= 10  # 6/min = one every 10 s
    # a forwarded-for header from an untrusted peer does not buy a new bucket
    code, _, _ = await _post(url, b"not json", {"X-Forwarded-For": "203.0.113.9"})
    assert code == 429
    # the ICE config (which issues TURN credentials) is limited the same way, separately
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(4):
            async with http.get(f"{media.url}/config.json") as r:
                statuses.append(r.status)
    assert statuses == [200, 200, 200, 429]
    assert not fake.sessions


@pytest.mark.parametrize("media_env", [{"MEDIA_OFFER_RATE_PER_MIN": "6", "MEDIA_OFFER_BURST": "2",
                                        "MEDIA_TRUSTED_PROXIES": "127.0.0.0/8"}])
async def test_forwarded_for_is_believed_from_a_trusted_proxy(media, fake: FakeSession) -> None:
    iid, _ = fake.create()
    url = f"{media.url}/i/{iid}/offer"
    a, b = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
    assert [(await _post(url, b"x", a))[0] for _ in range(3)] == [400, 400, 429]
    assert (await _post(url, b"x", b))[0] == 400  # another client behind the proxy has its own bucket
    # a client prepending a fake address: the right-most untrusted hop (what the proxy saw) counts
    assert (await _post(url, b"x", {"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}))[0] == 429


def test_client_address_and_bucket_rules() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_address("10.1.1.1", "203.0.113.5, 10.2.2.2", trusted) == "203.0.113.5"
    assert client_address("10.1.1.1", "10.3.3.3, 10.2.2.2", trusted) == "10.1.1.1"  # all proxies: the peer
    assert client_address("10.1.1.1", "garbage", trusted) == "10.1.1.1"
    assert client_address("192.0.2.1", "203.0.113.5", trusted) == "192.0.2.1"  # untrusted peer: header ignored
    now = [0.0]
    limiter = RateLimiter(1.0, 2, max_keys=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)][:2] == [0, 0] and limiter.take("a") > 0
    now[0] += 1.0  # one token a second
    assert limiter.take("a") == 0
    for key in "bcdefg":
        limiter.take(key)
    assert len(limiter._buckets) == 3  # bounded memory


@pytest.mark.parametrize("media_env", [{"MEDIA_MAX_PEERS": "3", "MEDIA_OFFER_RATE_PER_MIN": "0"}])
async def test_the_peer_cap_holds_under_concurrent_offers(media, fake: FakeSession) -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    peak = [0]

    async def watch() -> None:
        while True:
            peak[0] = max(peak[0], len(media.gateway.peers))
            await asyncio.sleep(0)

    interviews = [fake.create() for _ in range(16)]
    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(
        _post(f"{media.url}/i/{iid}/offer", json.dumps({"type": "offer", "sdp": sdp, "token": token}).encode())
        for iid, token in interviews))
    watcher.cancel()
    codes = sorted(code for code, _, _ in results)
    assert codes.count(200) == 3 and codes.count(503) == 13, codes
    assert peak[0] <= 3 and len(media.gateway.peers) <= 3 and media.gateway.admitting == 0
    busy = next(body for code, body, _ in results if code == 503)
    assert "busy" in busy["error"]


@pytest.mark.parametrize("media_env", [{"MEDIA_ICE_SERVERS": "stun:stun.example.com:3478,turn:turn.example.com:3478",
                                        "MEDIA_TURN_SECRET": "s3cret", "MEDIA_TURN_TTL_S": "600"}])
async def test_turn_credentials_are_short_lived_per_session_and_coturn_compatible(media, fake: FakeSession) -> None:
    async with aiohttp.ClientSession() as http:
        configs = []
        for _ in range(2):
            async with http.get(f"{media.url}/config.json?interview=iv_abc") as r:
                assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
                configs.append(await r.json())
    stun, turn = configs[0]["iceServers"]
    assert "username" not in stun
    expiry, session = turn["username"].split(":", 1)
    assert 590 <= int(expiry) - time.time() <= 601 and session.startswith("iv_abc-")
    expected = base64.b64encode(hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected
    assert configs[1]["iceServers"][1]["username"] != turn["username"]  # each session its own
    assert "s3cret" not in str(configs)
    # the same arithmetic by an independent tool (what coturn computes): openssl's HMAC-SHA1
    import subprocess
    out = subprocess.run(["openssl", "dgst", "-sha1", "-hmac", "s3cret", "-binary"], input=turn["username"].encode(),
                         capture_output=True, check=True).stdout
    assert base64.b64encode(out).decode() == turn["credential"]
