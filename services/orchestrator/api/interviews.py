"""What the Interviews API does, independent of transport: the gRPC servicer and the Redis command
stream both call this, so the two paths cannot drift apart.

State changes go through InterviewStore.update (compare-and-set), and every change that a live
session must apply (config, mode, phase, code events, end) is also written to the interview's
control stream for the session owner.
"""
from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable

from interview.v1 import common_pb2, interviews_pb2, session_pb2
from services.common import errors
from services.orchestrator import plans
from services.orchestrator.api import validation
from services.orchestrator.api.tokens import JoinTokens
from services.orchestrator.capabilities import Capabilities
from services.orchestrator.store.spill import SpillFile
from services.orchestrator.store.store import (TRANSIENT, Change, InterviewStore, NotFound, Snapshot, StoreError,
                                               fingerprint, new_interview_id, team_of, timestamp)

log = logging.getLogger("api.interviews")

ENDED = session_pb2.INTERVIEW_ENDED
LINK_REISSUED = "link_reissued"  # read by the live session (conversation/session.py) from the control stream
RUN_KINDS = (common_pb2.CODE_EVENT_RUN, common_pb2.CODE_EVENT_SUBMIT)


def _visible(iv: interviews_pb2.Interview, team: str | None) -> None:
    """Another team's interview is NOT_FOUND, worded as for an unknown id, so ids do not leak.
    team None: an internal caller (the live session's own actions)."""
    if team is not None and team_of(iv) != team:
        raise NotFound(f"interview {iv.id} not found")


def _not_ended(iv: interviews_pb2.Interview, action: str) -> None:
    if iv.status == ENDED:
        raise errors.FailedPrecondition(f"cannot {action}: interview {iv.id} has ended ({iv.end_reason or 'no reason given'})")


class InterviewsApi:
    def __init__(self, store: InterviewStore, join_tokens: JoinTokens, templates: dict[str, common_pb2.Plan],
                 public_base_url: str, join_token_ttl_s: int, *, owner: str = "api", lease_ttl_ms: int = 10_000,
                 ended: Callable[[str], None] = lambda iid: None, spill: SpillFile | None = None,
                 capabilities: Capabilities | None = None):
        self.capabilities = capabilities  # what STT/TTS support: a config they cannot serve is refused
        self.spill = spill  # this instance's spilled transcript entries: purged with their interview
        self.store = store
        self.owner, self.lease_ttl_ms = f"{owner}:end", lease_ttl_ms
        self.ended = ended  # the abandoned-session sweeper's wake-up
        self.join_tokens = join_tokens
        self.templates = templates
        self.base_url = public_base_url.rstrip("/")
        self.join_token_ttl_s = join_token_ttl_s

    def join_link(self, iid: str) -> str:
        """The candidate page of an interview, without a token (the token is returned once, at create)."""
        return f"{self.base_url}/i/{urllib.parse.quote(iid)}"

    def _plan(self, r: interviews_pb2.CreateInterviewRequest) -> tuple[str, common_pb2.Plan]:
        if r.WhichOneof("plan_source") == "template":
            plan = self.templates.get(r.template)
            if plan is None:
                raise errors.NotFound(f"unknown template {r.template[:60]!r}; available: "
                                      + ", ".join(sorted(self.templates)))
            return r.template, plan
        try:
            return "", plans.validate_proto(r.plan, "plan")
        except plans.PlanError as exc:
            raise validation.invalid(f"plan.{exc.field}" if exc.field else "plan", exc.problem) from None

    async def create(self, r: interviews_pb2.CreateInterviewRequest, caller: str,
                     team: str = "") -> interviews_pb2.CreateInterviewResponse:
        validation.create_request(r)
        template, plan = self._plan(r)
        if self.capabilities is not None:
            await self.capabilities.check(r.config)
        now = self.store.now()
        iv = interviews_pb2.Interview(
            id=new_interview_id(now), status=session_pb2.INTERVIEW_CREATED, template=template, plan=plan,
            candidate=r.candidate, role=r.role or plan.role, persona=r.persona or common_pb2.PERSONA_INTERVIEWER,
            video_policy=r.video_policy, config=r.config, phase_id=plan.phases[0].id, created_at=timestamp(now),
            created_by=caller, team=team or caller, labels=r.labels)
        iv.mode = iv.config.mode = r.config.mode or plans.phase_mode(plan.phases[0])
        iv.join_url = self.join_link(iv.id)
        stored, _repeat = await self.store.create(iv, created_by=caller, request_id=r.request_id,
                                                  fingerprint=_fingerprint(r))
        token, expires = self.join_tokens.issue(stored.id, now, r.join_token_ttl_s or self.join_token_ttl_s)
        return interviews_pb2.CreateInterviewResponse(
            interview=stored, join_url=f"{stored.join_url}#token={token}", join_token=token,
            join_token_expires_at=timestamp(expires))

    async def get(self, iid: str, team: str | None = None) -> Snapshot:
        snap = await self.store.get(validation.interview_id(iid))
        _visible(snap.interview, team)
        return snap

    async def update_config(self, r: interviews_pb2.UpdateConfigRequest, team: str | None = None) -> interviews_pb2.Interview:
        iid = validation.interview_id(r.interview_id)
        if r.HasField("mode"):
            validation.mode(r.mode, "mode")
        if r.HasField("silence_timeout_s"):
            validation.silence_timeout(r.silence_timeout_s, "silence_timeout_s")
        validation.vad_params(r.vad_params, "vad_params")
        turns = r.turn_taking.ListFields()
        if turns:  # each field's range now; the combination with the interview's values below
            validation.turn_taking(r.turn_taking, "turn_taking", validation.TURN_TAKING_ANY)
        if not (r.HasField("mode") or r.HasField("silence_timeout_s") or r.vad_params.ListFields() or turns):
            raise validation.invalid("(request)",
                                     "nothing to update: set mode, silence_timeout_s, vad_params or turn_taking")

        def mutate(iv: interviews_pb2.Interview) -> Change:
            _visible(iv, team)
            _not_ended(iv, "update the config")
            if turns:  # the combination, with the interview's values for the fields left unset
                current = interviews_pb2.TurnTakingConfig()
                current.CopyFrom(validation.TURN_TAKING_DEFAULTS)
                current.MergeFrom(iv.config.turn_taking)
                validation.turn_taking(r.turn_taking, "turn_taking", current)
            change = Change()
            if r.HasField("mode") and r.mode != iv.mode:
                change.events.append((self.store.event(iv.id, mode_changed=interviews_pb2.ModeChanged(
                    from_mode=iv.mode, to_mode=r.mode, reason="api")), "c"))
                iv.mode = iv.config.mode = r.mode
            if r.HasField("silence_timeout_s"):
                iv.config.silence_timeout_s = r.silence_timeout_s
            if r.vad_params.ListFields():
                target = r.mode if r.HasField("mode") else iv.mode
                (iv.config.coding_vad if target == common_pb2.MODE_CODING else iv.config.conversational_vad
                 ).MergeFrom(r.vad_params)
            if turns:  # set fields replace the interview's, unset ones keep them
                iv.config.turn_taking.MergeFrom(r.turn_taking)
            change.events.append((self.store.event(iv.id, config_changed=interviews_pb2.ConfigChanged(
                config=iv.config)), "c"))
            return change

        iv, _ = await self.store.update(iid, mutate)
        return iv

    async def set_phase(self, r: interviews_pb2.SetPhaseRequest, reason: str = "api",
                        team: str | None = None) -> interviews_pb2.Interview:
        iid = validation.interview_id(r.interview_id)
        if not r.phase_id:
            raise validation.invalid("phase_id", "required")

        def mutate(iv: interviews_pb2.Interview) -> Change:
            _visible(iv, team)
            _not_ended(iv, "change the phase")
            phase = next((p for p in iv.plan.phases if p.id == r.phase_id), None)
            if phase is None:
                raise errors.FailedPrecondition(f"phase {r.phase_id[:60]!r} is not in plan {iv.plan.name or iv.plan.title!r} "
                                          f"(phases: {', '.join(p.id for p in iv.plan.phases)})")
            change = Change()
            if phase.id == iv.phase_id:
                return change
            change.events.append((self.store.event(iv.id, phase_changed=interviews_pb2.PhaseChanged(
                from_phase_id=iv.phase_id, to_phase_id=phase.id, reason=reason)), "c"))
            iv.phase_id = phase.id
            new_mode = plans.phase_mode(phase)
            if new_mode != iv.mode:
                change.events.append((self.store.event(iv.id, mode_changed=interviews_pb2.ModeChanged(
                    from_mode=iv.mode, to_mode=new_mode, reason="phase")), "c"))
                iv.mode = iv.config.mode = new_mode
            return change

        iv, _ = await self.store.update(iid, mutate)
        return iv

    async def post_code_event(self, r: interviews_pb2.PostCodeEventRequest,
                              team: str | None = None) -> interviews_pb2.PostCodeEventResponse:
        iid = validation.interview_id(r.interview_id)
        validation.code_snapshot(r.code)
        code = interviews_pb2.CodeEvent(code=r.code)
        if not code.code.HasField("time"):
            code.code.time.CopyFrom(timestamp(self.store.now()))

        def mutate(iv: interviews_pb2.Interview) -> Change:
            _visible(iv, team)
            _not_ended(iv, "post a code event")
            change = Change([(self.store.event(iv.id, code_event=code), "c")])
            switch = not iv.config.HasField("run_switches_to_conversational") or iv.config.run_switches_to_conversational
            if r.code.kind in RUN_KINDS and iv.mode == common_pb2.MODE_CODING and switch:
                change.events.append((self.store.event(iv.id, mode_changed=interviews_pb2.ModeChanged(
                    from_mode=iv.mode, to_mode=common_pb2.MODE_CONVERSATIONAL, reason="code_event")), "c"))
                iv.mode = iv.config.mode = common_pb2.MODE_CONVERSATIONAL
            return change

        iv, event_ids = await self.store.update(iid, mutate)
        return interviews_pb2.PostCodeEventResponse(event_id=event_ids[0], mode=iv.mode)

    async def end(self, r: interviews_pb2.EndInterviewRequest, default_reason: str = "ended_by_api",
                  team: str | None = None) -> interviews_pb2.Interview:
        iid = validation.interview_id(r.interview_id)
        validation.max_len(r.reason, "reason", 500)

        def mutate(iv: interviews_pb2.Interview) -> Change:
            _visible(iv, team)
            if iv.status == ENDED:
                raise errors.FailedPrecondition(f"interview {iv.id} has already ended ({iv.end_reason})")
            iv.status = ENDED
            iv.end_reason = r.reason or default_reason
            iv.ended_at.CopyFrom(timestamp(self.store.now()))
            return Change([(self.store.event(iv.id, lifecycle=interviews_pb2.Lifecycle(
                kind=interviews_pb2.Lifecycle.ENDED, reason=iv.end_reason)), "cl")])

        iv, _ = await self.store.update(iid, mutate)
        await self._close_abandoned(iid)
        return iv

    async def _close_abandoned(self, iid: str) -> None:
        """Turns a crashed owner left in flight become incomplete entries now if no session holds
        the lease (a live owner writes its own as it ends); otherwise the sweeper closes them once
        the dead owner's lease expires."""
        try:
            closed = await self.store.close_abandoned(iid, self.owner, self.lease_ttl_ms)
        except (StoreError, *TRANSIENT) as exc:
            log.warning("in-flight turns not closed at end; the sweeper retries", extra={"error": str(exc)[:200]})
            closed = None
        if closed is None:
            self.ended(iid)
        elif closed:
            log.warning("closed turns an abandoned session left in flight",
                        extra={"interview_id": iid, "entries": [e.entry_id for e in closed]})

    async def reissue_link(self, r: interviews_pb2.ReissueJoinLinkRequest,
                           team: str | None = None) -> interviews_pb2.ReissueJoinLinkResponse:
        """Revoke the interview's join links and session credentials (the link generation goes up),
        tell the live session joined with them to end (control stream), and issue a new link."""
        iid = validation.interview_id(r.interview_id)
        if r.join_token_ttl_s and not 60 <= r.join_token_ttl_s <= 30 * 24 * 3600:
            raise validation.invalid("join_token_ttl_s", "must be between 60 s and 30 days (0 = the server default)")
        _not_ended((await self.get(iid, team)).interview, "reissue the join link")
        gen = await self.store.revoke_links(iid)

        def mutate(iv: interviews_pb2.Interview) -> Change:
            return Change([(self.store.event(iv.id, lifecycle=interviews_pb2.Lifecycle(
                kind=interviews_pb2.Lifecycle.SESSION_LEFT, reason=LINK_REISSUED)), "c")])

        await self.store.update(iid, mutate)
        token, expires = self.join_tokens.issue(iid, self.store.now(), r.join_token_ttl_s or self.join_token_ttl_s, gen)
        return interviews_pb2.ReissueJoinLinkResponse(join_url=f"{self.join_link(iid)}#token={token}",
                                                      join_token=token, join_token_expires_at=timestamp(expires))

    async def transcript(self, r: interviews_pb2.GetTranscriptRequest,
                         team: str | None = None) -> interviews_pb2.GetTranscriptResponse:
        iid = validation.interview_id(r.interview_id)
        size = validation.page_size(r.page_size, "page_size", 100, 1000)
        if r.page_token and not r.page_token.isdigit():
            raise validation.invalid("page_token", "not a token returned by GetTranscript")
        await self.get(iid, team)  # NOT_FOUND for unknown (or another team's) interviews, not an empty page
        entries = await self.store.transcript(iid, int(r.page_token or 0), size + 1)
        more = len(entries) > size
        entries = entries[:size]
        return interviews_pb2.GetTranscriptResponse(
            entries=entries, next_page_token=str(entries[-1].sequence) if more else "")

    async def list(self, r: interviews_pb2.ListInterviewsRequest, team: str | None = None) -> interviews_pb2.ListInterviewsResponse:
        size = validation.page_size(r.page_size, "page_size", 50, 500)
        validation.status_filter(r.status)
        if r.page_token:
            validation.interview_id(r.page_token, "page_token")
        keep = None if team is None else (lambda iv: team_of(iv) == team)
        items, token = await self.store.list(r.status, size, r.page_token, keep=keep)
        return interviews_pb2.ListInterviewsResponse(interviews=items, next_page_token=token)

    async def delete(self, iid: str, team: str | None = None) -> int:
        await self.get(iid, team)
        n = await self.store.delete(iid)
        if self.spill is not None:
            await self.spill.purge(iid)
        return n

    async def watch_position(self, r: interviews_pb2.WatchEventsRequest, team: str | None = None) -> tuple[str, str]:
        """(stream key, first position) for WatchEvents; NOT_FOUND for an unknown interview."""
        after = validation.stream_position(r.after_event_id)
        if r.interview_id:
            await self.get(r.interview_id, team)
        key = self.store.stream_key(r.interview_id)
        if after == "$":
            after = await self.store.last_event_id(key)
        return key, after or "0-0"

    async def exists(self, iid: str) -> bool:
        try:
            await self.store.get(iid)
            return True
        except NotFound:
            return False


def _fingerprint(r: interviews_pb2.CreateInterviewRequest) -> str:
    """Requests that differ only in their request_id are the same request."""
    copy = interviews_pb2.CreateInterviewRequest()
    copy.CopyFrom(r)
    copy.request_id = ""
    return fingerprint(copy)
