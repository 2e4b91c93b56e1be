"""Join links: one live session per link (reconnects use the session credential), the link works
again once that session has ended, and ReissueJoinLink revokes the link and its credentials,
ending the session joined with them. Real Session.Connect, real AI services, real Redis."""
from __future__ import annotations

import grpc
import pytest

from interview.v1 import interviews_pb2
from tests.orchestrator.session_support import Candidate, Orchestrator

pytestmark = pytest.mark.timeout(60)


async def _refused(orch: Orchestrator, iid: str, **cred: str) -> tuple[grpc.StatusCode | None, str]:
    async with Candidate(orch.address, iid, instant_playback=True, **cred) as cand:
        await cand.ended.wait()
        return cand.status, cand.details


async def _credential(cand: Candidate) -> str:
    await cand.wait_for(lambda: cand.of("credential"), what="credential")
    return cand.of("credential")[0].credential


async def test_a_link_in_use_is_refused_and_works_again_after_the_session(orch: Orchestrator) -> None:
    iid, token = await orch.create()
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as first:
        credential = await _credential(first)
        await first.wait_generations(1)
        code, details = await _refused(orch, iid, token=token)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "already in use" in details, (code, details)
        assert not first.of("end")  # the live candidate was not replaced by the second holder
        # the live session's own reconnect (its credential) still works, and keeps the link taken
        async with Candidate(orch.address, iid, credential=credential, instant_playback=True) as again:
            await first.wait_for(lambda: [e for e in first.of("end") if e.reason == "replaced"], what="replaced")
            await again.wait_generations(1)
            code, details = await _refused(orch, iid, token=token)
            assert code == grpc.StatusCode.FAILED_PRECONDITION, (code, details)
    await orch.transcript(iid)  # the session has ended and released its lease
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as later:
        await later.wait_generations(1)
        assert not later.of("end")


async def test_reissue_revokes_the_link_and_ends_its_session(orch: Orchestrator) -> None:
    iid, token = await orch.create()
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
        credential = await _credential(cand)
        await cand.wait_generations(1)
        new = await orch.api.reissue_link(interviews_pb2.ReissueJoinLinkRequest(interview_id=iid, join_token_ttl_s=600))
        await cand.wait_for(lambda: [e for e in cand.of("end") if e.reason == "link_reissued"], timeout=5,
                            what="the session joined with the old link ended")
    assert new.join_token != token and new.join_url.endswith(f"/i/{iid}#token={new.join_token}")
    assert 590 <= new.join_token_expires_at.seconds - orch.store.now() <= 600
    for old in ({"token": token}, {"credential": credential}):
        code, details = await _refused(orch, iid, **old)
        assert code == grpc.StatusCode.UNAUTHENTICATED and "new join link" in details, (old, code, details)
    await orch.transcript(iid)
    async with Candidate(orch.address, iid, token=new.join_token, instant_playback=True) as fresh:
        await fresh.wait_generations(1)
        assert not fresh.of("end")
    await orch.api.end(interviews_pb2.EndInterviewRequest(interview_id=iid))
    with pytest.raises(Exception, match="has ended"):
        await orch.api.reissue_link(interviews_pb2.ReissueJoinLinkRequest(interview_id=iid))
