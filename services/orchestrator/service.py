"""Servicer wiring of the orchestrator service: the Redis store, the Interviews API, the Redis
command stream consumer, and Session.Connect (the conversation loop, conversation/)."""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from interview.v1 import (interviews_pb2, interviews_pb2_grpc, llm_pb2_grpc, session_pb2, session_pb2_grpc,
                          stt_pb2_grpc, tts_pb2_grpc, vad_pb2_grpc, video_pb2_grpc)
from services.common.channels import create_channel
from services.common.config import ConfigError
from services.common.ratelimit import RateLimiter
from services.common.server import ServiceRuntime
from services.orchestrator import plans
from services.orchestrator.capabilities import Capabilities, grpc_fetch
from services.orchestrator.readiness import StoreReadiness
from services.orchestrator.api import auth
from services.orchestrator.api.commands import CommandConsumer
from services.orchestrator.api.interviews import InterviewsApi
from services.orchestrator.api.servicer import ApiLimits, InterviewsServicer
from services.orchestrator.api.tokens import JoinTokens
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.conversation.abandoned import AbandonedSweeper
from services.orchestrator.conversation.connect import SessionServicer
from services.orchestrator.conversation.settings import LoopSettings, Stubs
from services.orchestrator.store.spill import SpillFile, SpillReplayer
from services.orchestrator.store.store import InterviewStore
from services.orchestrator.evaluation.evaluator import Settings as EvaluationSettings
from services.orchestrator.evaluation.jobs import EvaluationJobs
from services.orchestrator.evaluation.llm_client import grpc_generate

log = logging.getLogger("orchestrator")


def redis_client(url: str) -> aioredis.Redis:
    """Short connect timeout and few quick retries: callers get UNAVAILABLE fast when Redis is down,
    and the outbox / command consumer do their own patient retrying."""
    return aioredis.Redis.from_url(url, socket_connect_timeout=2.0, health_check_interval=30,
                                   retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2))


def join_tokens(cfg: OrchestratorConfig) -> JoinTokens:
    if cfg.join_token_secret:
        if len(cfg.join_token_secret) < 32:
            raise ConfigError(["ORCHESTRATOR_JOIN_TOKEN_SECRET: use at least 32 characters"])
        return JoinTokens(cfg.join_token_secret.encode())
    log.warning("ORCHESTRATOR_JOIN_TOKEN_SECRET is not set: join tokens are signed with an EPHEMERAL key, "
                "so they stop working when this process restarts and other instances cannot verify them. "
                "Set it (>= 32 random characters, the same on every instance) in any real deployment.")
    return JoinTokens.ephemeral()


def is_local(host: str) -> bool:
    """Bound to loopback only = local development, where the ephemeral fallbacks are allowed."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def deployment_problems(cfg: OrchestratorConfig) -> list[str]:
    """Beyond loopback (a container, a pod) the development fallbacks would break the deployment
    quietly (a key file written into a read-only image, links other replicas reject): refuse them."""
    if is_local(cfg.server.host):
        return []
    where = f"when serving on {cfg.server.host} (beyond loopback)"
    problems = []
    if not cfg.api_keys:
        problems.append(f"ORCHESTRATOR_API_KEYS: required {where}; the generated development key is for local "
                        "runs only (set name:key entries, keys of at least 16 characters)")
    if not cfg.join_token_secret:
        problems.append(f"ORCHESTRATOR_JOIN_TOKEN_SECRET: required {where}; without it each instance signs join "
                        "links with its own ephemeral key, so other replicas reject them and a restart voids "
                        "them all (set the same >= 32 random characters on every instance)")
    return problems


def api_keys(cfg: OrchestratorConfig) -> list[auth.ApiKey]:
    if not cfg.api_keys:
        try:
            return auth.dev_key(Path(cfg.dev_key_file))
        except OSError as exc:
            raise ConfigError([f"ORCHESTRATOR_API_KEYS is not set and the development key cannot be written to "
                               f"ORCHESTRATOR_DEV_KEY_FILE={cfg.dev_key_file} ({exc.strerror or exc}); set "
                               "ORCHESTRATOR_API_KEYS (a read-only filesystem, e.g. a container, needs it)"]) from None
    try:
        return auth.parse_keys(cfg.api_keys)
    except ValueError as exc:
        raise ConfigError([f"ORCHESTRATOR_API_KEYS: {exc}"]) from None


def loop_settings(cfg: OrchestratorConfig) -> LoopSettings:
    return LoopSettings(
        stt_provider=cfg.stt_provider, tts_provider=cfg.tts_provider, pre_roll_ms=cfg.pre_roll_ms,
        finalize_at_pause_ms=cfg.finalize_at_pause_ms, barge_in_commit_ms=cfg.barge_in_commit_ms, barge_in_pause_ms=cfg.barge_in_pause_ms,
        conversational_silence_ms=cfg.conversational_silence_ms,
        coding_silence_ms=cfg.coding_silence_ms, check_in_s=cfg.check_in_s, lease_ttl_ms=cfg.lease_ttl_ms,
        history_max_messages=cfg.history_max_messages, history_max_chars=cfg.history_max_chars,
        playback_margin_ms=cfg.playback_margin_ms)


async def serve_sessions(cfg: OrchestratorConfig, runtime: ServiceRuntime, sessions: SessionServicer) -> None:
    """Session.Connect on the API server, or (ORCHESTRATOR_SESSION_PORT) on a server of its own with
    the same health, reflection, tracing and admission, drained after the API server on SIGTERM."""
    name = session_pb2.DESCRIPTOR.services_by_name["Session"].full_name
    if not cfg.session_port:
        runtime.add(name, session_pb2_grpc.add_SessionServicer_to_server, sessions)
        return
    session_runtime = ServiceRuntime("orchestrator-session", dataclasses.replace(cfg.server, port=cfg.session_port))
    session_runtime.add(name, session_pb2_grpc.add_SessionServicer_to_server, sessions)
    await session_runtime.start()
    runtime.on_shutdown(session_runtime.stop)


async def build(cfg: OrchestratorConfig, runtime: ServiceRuntime) -> None:
    try:  # a broken plan file or key stops start-up (exit 2) with the file / variable named
        problems = deployment_problems(cfg)
        if problems:
            raise ConfigError(problems)
        templates = plans.load_dir()
        tokens = join_tokens(cfg)
        keys = api_keys(cfg)
    except (ConfigError, plans.PlanError) as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    client = redis_client(cfg.redis_url)
    store = InterviewStore(client, prefix=cfg.key_prefix, retention_s=cfg.retention_s)
    instance = cfg.instance_id or f"{socket.gethostname()}-{os.getpid()}"
    sweeper = AbandonedSweeper(store, instance, lease_ttl_ms=cfg.lease_ttl_ms, grace_s=cfg.abandoned_grace_s,
                               interval_s=cfg.sweep_interval_s)
    spill = SpillFile(cfg.spill_path or f".run/orchestrator-spill-{cfg.key_prefix.strip(':') or 'default'}.bin",
                      cfg.spill_max_bytes)
    channels = [create_channel(t) for t in (cfg.vad_addr, cfg.stt_addr, cfg.llm_addr, cfg.tts_addr)]
    stubs = Stubs(vad_pb2_grpc.VadStub(channels[0]), stt_pb2_grpc.SttStub(channels[1]),
                  llm_pb2_grpc.LlmStub(channels[2]), tts_pb2_grpc.TtsStub(channels[3]))
    capabilities = Capabilities(grpc_fetch(stubs.stt, 2.0), grpc_fetch(stubs.tts, 2.0),
                                stt_provider=cfg.stt_provider, tts_provider=cfg.tts_provider,
                                refresh_s=cfg.capabilities_refresh_s, retry_s=cfg.capabilities_retry_s)
    capabilities.start()
    runtime.on_shutdown(capabilities.stop)
    api = InterviewsApi(store, tokens, templates, cfg.public_base_url, cfg.join_token_ttl_s, owner=instance,
                        lease_ttl_ms=cfg.lease_ttl_ms, ended=lambda iid: sweeper.wake(), spill=spill,
                        capabilities=capabilities)
    if cfg.video_addr:  # optional: a session without a video service carries on with voice only
        channels.append(create_channel(cfg.video_addr))
        stubs.video = video_pb2_grpc.VideoStub(channels[-1])
    evaluations = EvaluationJobs(
        store, grpc_generate(stubs.llm), instance, lease_ms=cfg.evaluation_lease_ms,
        concurrency=cfg.evaluation_workers,
        settings=EvaluationSettings(review_margin=cfg.evaluation_review_margin, timeout_ms=cfg.evaluation_timeout_ms,
                                    low_stt_confidence=cfg.evaluation_low_stt_confidence))
    limits = ApiLimits(RateLimiter(cfg.api_rate_per_s, cfg.api_burst),
                       RateLimiter(cfg.api_watch_rate_per_s, cfg.api_watch_burst))
    servicer = InterviewsServicer(api, auth.Authenticator(keys, tokens), cfg.watch_block_ms, evaluations,
                                  cfg.evaluate_wait_s, limits)
    runtime.add(interviews_pb2.DESCRIPTOR.services_by_name["Interviews"].full_name,
                interviews_pb2_grpc.add_InterviewsServicer_to_server, servicer)
    sessions = SessionServicer(store, api, tokens, stubs, loop_settings(cfg), instance, cfg.session_credential_ttl_s,
                               spill=spill)
    await serve_sessions(cfg, runtime, sessions)
    sweeper.start()
    runtime.on_shutdown(sweeper.stop)
    replayer = SpillReplayer(spill, store)
    replayer.start()  # at start-up, then while the file has records
    runtime.on_shutdown(replayer.stop)
    readiness = StoreReadiness(client.ping, runtime.health.set,
                               [interviews_pb2.DESCRIPTOR.services_by_name["Interviews"].full_name,
                                session_pb2.DESCRIPTOR.services_by_name["Session"].full_name])
    readiness.start()
    runtime.on_shutdown(readiness.stop)
    if cfg.commands:
        consumer = CommandConsumer(api, instance)
        consumer.start()
        runtime.on_shutdown(consumer.stop)
    if cfg.evaluation_workers:
        evaluations.start()
        runtime.on_shutdown(evaluations.stop)
    runtime.on_shutdown(client.aclose)
    for channel in channels:
        runtime.on_shutdown(channel.close)
    log.info("interview store", extra={"templates": ",".join(sorted(templates)), "key_prefix": cfg.key_prefix,
                                       "retention_s": cfg.retention_s})
