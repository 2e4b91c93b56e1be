"""Configuration of the orchestrator service (env vars prefixed ORCHESTRATOR_; `python -m services.orchestrator env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import env
from services.common.server import ServerSettings


@dataclass(frozen=True)
class OrchestratorConfig:
    server: ServerSettings
    session_port: int = env(0, min=0, max=65535,
                            help="serve Session.Connect (media's streams) on this port alone, apart from the public "
                                 "API, so a network policy can admit only media to it; 0 = on ORCHESTRATOR_PORT")
    redis_url: str = env("redis://127.0.0.1:6379/0", name="REDIS_URL",
                         help="the interview store (Redis 7 with AOF); shared by every orchestrator instance")
    api_keys: str = env("", secret=True,
                        help="API keys, comma-separated name:key or name:key:ro (read-only); unset = one "
                             "ephemeral key written to DEV_KEY_FILE (development only: refused, exit 2, when HOST is "
                             "not loopback)")
    dev_key_file: str = env(".run/orchestrator-api-key",
                            help="where the ephemeral development API key is written when API_KEYS is unset")
    join_token_secret: str = env("", secret=True,
                                 help="HMAC key signing candidate join tokens (>= 32 chars); unset = ephemeral "
                                      "(tokens die with the process; development only: refused, exit 2, "
                                      "when HOST is not loopback)")
    join_token_ttl_s: int = env(24 * 3600, min=60, max=30 * 24 * 3600, help="default lifetime of a join token")
    public_base_url: str = env("http://127.0.0.1:8080", help="base of the candidate join links (the media service)")
    retention_s: int = env(30 * 24 * 3600, min=0,
                           help="interview data expires this long after its last write; 0 = keep until deleted")
    key_prefix: str = env("iv:", help="prefix of every Redis key this service writes")
    commands: bool = env(True, help="consume the Redis command stream (<prefix>commands)")
    instance_id: str = env("", help="this instance's name in leases and consumer groups; unset = host-pid")
    api_rate_per_s: float = env(50.0, min=0, help="Interviews API calls per second per API key, sustained "
                                                   "(token bucket; 0 = no limit); over it: RESOURCE_EXHAUSTED with "
                                                   "'retry-after' (seconds) in the trailing metadata")
    api_burst: int = env(200, min=1, max=100_000, help="Interviews API calls per API key allowed in a burst")
    api_watch_rate_per_s: float = env(5.0, min=0, help="WatchEvents streams opened per second per API key (its own "
                                                       "bucket: a stream is long-lived; 0 = no limit)")
    api_watch_burst: int = env(50, min=1, max=100_000, help="WatchEvents streams per API key opened in a burst")
    watch_block_ms: int = env(5000, min=100, max=60000, help="longest single XREAD BLOCK of WatchEvents")
    # ---- the conversation loop (Session.Connect) ----
    vad_addr: str = env("127.0.0.1:50052", name="VAD_ADDR",
                        help="VAD service target (grpc syntax; several instances: ipv4:a:p,b:p; round_robin)")
    stt_addr: str = env("127.0.0.1:50053", name="STT_ADDR", help="STT service target")
    llm_addr: str = env("127.0.0.1:50054", name="LLM_ADDR", help="LLM service target")
    tts_addr: str = env("127.0.0.1:50055", name="TTS_ADDR", help="TTS service target")
    video_addr: str = env("127.0.0.1:50056", name="VIDEO_ADDR",
                          help="video service target ('' = no video: media is told to send no frames)")
    stt_provider: str = env("", help="STT provider asked for ('' = the STT server's default)")
    tts_provider: str = env("", help="TTS provider asked for ('' = the TTS server's chain)")
    capabilities_refresh_s: float = env(60.0, min=1, max=3600,
                                        help="how often the STT and TTS services are asked what languages and voices "
                                             "they support (CreateInterview checks against the last answer)")
    capabilities_retry_s: float = env(5.0, min=0.1, max=600,
                                      help="how soon to ask again while a service has never answered")
    pre_roll_ms: int = env(500, min=0, max=2000, help="audio before VAD's speech start sent to STT")
    finalize_at_pause_ms: int = env(150, min=0, max=2000,
                                    help="turn scoring on: FINALIZE the words so far once a pause has lasted this "
                                         "long, before its turn score comes (the policy has them at once); "
                                         "0 = when the score comes")
    barge_in_commit_ms: int = env(500, min=0, max=5000,
                                  help="candidate speech during agent speech this long (or a first STT word) "
                                       "commits a barge-in; shorter = PLAYBACK_RESUME")
    barge_in_pause_ms: int = env(128, min=32, max=2000,
                                 help="candidate speech (VAD-voiced windows) during agent speech this long pauses "
                                      "playback (stage one; reversible)")
    conversational_silence_ms: int = env(1200, min=100, max=10000, help="VAD min silence in CONVERSATIONAL mode")
    coding_silence_ms: int = env(3000, min=100, max=30000, help="VAD min silence in CODING mode")
    check_in_s: float = env(90.0, min=1, help="CODING check-in after this much silence (per-interview "
                                               "silence_timeout_s overrides)")
    lease_ttl_ms: int = env(10_000, min=1000, max=120_000,
                            help="owner lease of a live session; renewed every third of it")
    abandoned_grace_s: float = env(300.0, min=0,
                                   help="a session whose owner died without a rejoin for this long gets its "
                                        "in-flight turns closed as incomplete entries (at once once ended)")
    spill_path: str = env("", help="local append-only file for transcript entries Redis could not take at a "
                                   "session's end (replayed when it returns); put it on a writable volume; "
                                   "'' = .run/orchestrator-spill-<key prefix>.bin")
    spill_max_bytes: int = env(64 * 1024 * 1024, min=4096, help="bound of the spill file; beyond it entries are lost "
                                                                 "with an error log")
    sweep_interval_s: float = env(5.0, min=0.1, max=600, help="how often each instance looks for such sessions")
    session_credential_ttl_s: int = env(4 * 3600, min=60, help="lifetime of the reconnect credential issued at join")
    history_max_messages: int = env(40, min=6, max=400,
                                    help="history longer than this is summarised (by the LLM) before a reply")
    history_max_chars: int = env(24_000, min=2000, max=120_000, help="same, in characters of history text")
    playback_margin_ms: int = env(300, min=0, max=5000,
                                  help="without playback marks, a generation counts as played this long "
                                       "after its audio's duration")
    # ---- evaluation (evaluation/) ----
    evaluation_workers: int = env(2, min=0, max=32,
                                  help="evaluation jobs this instance runs at once; 0 = none (Evaluate still "
                                       "runs one when called)")
    evaluation_review_margin: int = env(1, min=0, max=10,
                                        help="a criterion whose two runs differ by more than this needs review")
    evaluation_low_stt_confidence: float = env(0.5, min=0.0, max=1.0,
                                               help="candidate entries whose STT confidence is below this are "
                                                    "marked as possible transcription errors (never penalised)")
    evaluation_timeout_ms: int = env(180_000, min=5_000, max=600_000, help="one evaluation run's LLM request")
    evaluation_lease_ms: int = env(60_000, min=2_000, max=600_000,
                                   help="a running job not renewed for this long is taken over by another instance")
    evaluate_wait_s: float = env(240.0, min=0.0, max=600.0,
                                 help="how long Evaluate waits for a running evaluation before answering RUNNING")
