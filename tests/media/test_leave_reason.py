"""How the candidate left reaches the orchestrator: the End button is Leave{hangup}, closing the tab
is Leave{page_closed} (over HTTP or the data channel); an unknown reason counts as a hangup. And
`python -m services.media env` describes media's own HTTP settings, not gRPC ones."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from services.media.client import ClientPeer, WavTrack, post_json
from tests.fakes.session import FakeSession
from tests.media.helpers import until
from tests.support.procs import ROOT


@pytest.mark.parametrize("how,reason,expected", [
    ("http", None, "hangup"),
    ("http", "page_closed", "page_closed"),
    ("http", "<script>", "hangup"),
    ("datachannel", "page_closed", "page_closed"),
])
async def test_leave_reason_tells_end_button_from_page_close(media, fake: FakeSession, how, reason, expected) -> None:
    iid, token = fake.create()
    client = ClientPeer(media.url, iid, WavTrack(np.zeros(0, np.int16), 48000), token=token)
    await client.connect()
    await client.wait_connected()
    rec = await fake.wait_session()
    body = {"peer_id": client.answer["peer_id"]} | ({"reason": reason} if reason else {})
    if how == "http":
        code, _ = await post_json(f"{media.url}/i/{iid}/hangup", body)
        assert code == 200
    else:
        await until(lambda: client.channel.readyState == "open", timeout=5)
        client.send_event(type="hangup", reason=reason)
    await until(rec.ended.is_set, timeout=5)
    assert rec.leave == expected
    await client.close()


def test_env_lists_http_settings_not_grpc_ones() -> None:
    out = subprocess.run([sys.executable, "-m", "services.media", "env"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    port = next(line for line in out.splitlines() if line.startswith("MEDIA_PORT "))
    assert "HTTP" in port and "gRPC" not in port and "8080" in port
    for grpc_only in ("MEDIA_MAX_STREAMS", "MEDIA_MAX_MESSAGE_BYTES", "MEDIA_KEEPALIVE_S"):
        assert grpc_only not in out
