"""Refusals: bad tokens map to readable 401/403/404/409/410 before any peer exists; malformed bodies
and SDP are 400; a peer that never completes ICE and a client that vanishes end the session promptly."""
from __future__ import annotations

import time

import numpy as np
import pytest

from services.media.client import ClientPeer, OfferRefused, WavTrack, post_json
from tests.fakes.session import FakeSession
from tests.media.helpers import until

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def silent() -> WavTrack:
    return WavTrack(np.zeros(0, np.int16), 48000)


@pytest.mark.parametrize("case,status,words", [
    ("garbage token", 401, "invalid or has expired"),
    ("expired", 401, "invalid or has expired"),
    ("other interview", 403, "does not give access"),
    ("unknown interview", 404, "no such interview"),
    ("ended", 410, "has ended"),
    ("no token", 401, "no join token"),
    ("link in use", 409, "already open in another window"),
])
async def test_join_refusals_are_readable_and_allocate_nothing(media, fake: FakeSession, case, status, words) -> None:
    iid, token = fake.create()
    other, other_token = fake.create()
    if case == "garbage token":
        token = "jt1.nope.nope"
    elif case == "expired":
        _, token = fake.create(iid, ttl_s=-1)
    elif case == "other interview":
        token = other_token
    elif case == "unknown interview":
        iid = "iv_missing"
    elif case == "ended":
        fake.end(iid)
    elif case == "no token":
        token = ""
    elif case == "link in use":  # a live session joined with this link holds it
        fake.interviews[iid].live = object()  # type: ignore[assignment]
        fake.interviews[iid].link = fake.tokens.verify(token, iid, time.time()).nonce
    code, body = await post_json(f"{media.url}/i/{iid}/offer", {"type": "offer", "sdp": SDP, "token": token})
    assert code == status and words in body["error"].lower()
    assert token[4:] not in body["error"] if token else True
    assert not media.gateway.peers


@pytest.mark.parametrize("raw,words", [
    (b"not json", "must be json"),
    (b'["a list"]', "json object"),
    (b'{"type": "answer", "sdp": "v=0"}', "offer"),
    (b'{"type": "offer", "sdp": "hello"}', "malformed"),
    (b'{"type": "offer", "sdp": "v=0\\r\\nm=video 9 x 96\\r\\n"}', "audio section"),
])
async def test_malformed_requests_are_400(media, fake: FakeSession, raw: bytes, words: str) -> None:
    iid, _ = fake.create()
    code, body = await post_json(f"{media.url}/i/{iid}/offer", None, raw=raw)
    assert code == 400 and words in body["error"].lower()
    assert not fake.sessions  # rejected before the orchestrator was asked


async def test_sdp_aiortc_cannot_use_is_400_and_the_session_is_left(media, fake: FakeSession) -> None:
    iid, token = fake.create()
    code, body = await post_json(f"{media.url}/i/{iid}/offer", {"type": "offer", "sdp": SDP + "a=garbage\r\n",
                                                              "token": token})
    assert code == 400 and "could not be used" in body["error"]
    rec = await fake.wait_session()
    await until(rec.ended.is_set, timeout=3)
    assert rec.leave == "bad_offer" and not media.gateway.peers
    # and the service goes on serving
    client = ClientPeer(media.url, iid, silent(), token=fake.create(iid)[1])
    await client.connect()
    await client.wait_connected()
    await client.hangup()


async def test_hangup_of_unknown_peer_is_404(media, fake: FakeSession) -> None:
    code, body = await post_json(f"{media.url}/i/x/hangup", {"peer_id": "nope"})
    assert code == 404 and "no such call" in body["error"].lower()


@pytest.fixture
def media_env() -> dict[str, str]:
    return {"MEDIA_ICE_TIMEOUT_S": "1.5", "MEDIA_PEER_IDLE_S": "1"}


async def test_a_peer_that_never_completes_ice_is_closed(media, fake: FakeSession) -> None:
    iid, token = fake.create()
    client = ClientPeer(media.url, iid, silent(), token=token)
    client.pc.addTransceiver("audio", direction="sendrecv")
    await client.pc.setLocalDescription(await client.pc.createOffer())
    sdp = "\r\n".join(l for l in client.pc.localDescription.sdp.split("\r\n") if not l.startswith("a=candidate"))
    await client.pc.close()  # nobody will ever answer ICE checks
    code, _ = await post_json(client.offer_url(), {"type": "offer", "sdp": sdp, "token": token})
    assert code == 200
    rec = await fake.wait_session()
    t0 = time.monotonic()
    await until(rec.ended.is_set, timeout=5)
    assert rec.leave in ("ice_timeout", "ice_failed", "browser_gone") and time.monotonic() - t0 < 3
    assert not media.gateway.peers


async def test_a_client_that_vanishes_ends_the_session_within_seconds(media, fake: FakeSession) -> None:
    iid, token = fake.create()
    client = ClientPeer(media.url, iid, silent(), token=token)
    await client.connect()
    await client.wait_connected()
    rec = await fake.wait_session()
    await until(lambda: len(rec.audio) > 10)
    await client.close()  # no hangup, no goodbye: like a killed tab
    gone = time.time()
    await until(rec.ended.is_set, timeout=5)
    assert rec.ended_at - gone < 3 and rec.leave in ("browser_gone", "ice_failed", "closed")


async def test_reconnect_with_the_session_credential_replaces_the_old_peer(media, fake: FakeSession) -> None:
    iid, token = fake.create()
    first = ClientPeer(media.url, iid, silent(), token=token)
    answer = await first.connect()
    await first.wait_connected()
    second = ClientPeer(media.url, iid, silent(), credential=answer["credential"])
    await second.connect()
    await second.wait_connected()
    rec1, rec2 = fake.sessions
    await until(rec1.ended.is_set, timeout=3)
    assert list(media.gateway.peers) == [second.answer["peer_id"]]
    assert rec2.join.session_credential == answer["credential"]
    with pytest.raises(OfferRefused) as refused:  # the old credential was rotated
        await ClientPeer(media.url, iid, silent(), credential=answer["credential"]).connect()
    assert refused.value.status == 401
    await first.close()
    await second.hangup()
