"""deploy/compose.yaml is a valid Compose file (the specification's JSON schema, kept in this
folder: see SCHEMAS.md) and agrees with the code: every service, its port and healthcheck, and
only variables the service reads. No Docker engine here, so this checks; it does not deploy."""
from __future__ import annotations

import re
import subprocess
import sys

import jsonschema
import pytest
import yaml

from services.common.server import DEFAULT_PORTS
from tests.deploy.code_facts import AI_SERVICES, GRPC_SERVICES, SERVICES, path, reads, secret_variables
from tests.support.procs import ROOT, ServiceProcess, free_port

SCHEMA = yaml.safe_load((ROOT / "tests" / "deploy" / "compose-spec.json").read_text())
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def env_file(name: str = "example.env") -> dict[str, str]:
    out = {}
    for line in path(name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(node, env: dict[str, str], missing: list[str]):
    """Compose's variable interpolation ($$, ${X}, ${X:-default}, ${X-default}, ${X:?error}, ${X?error})."""
    if isinstance(node, dict):
        return {k: interpolate(v, env, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, missing) for v in node]
    if not isinstance(node, str):
        return node

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        value = env.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op and op.endswith("?") and unset:
            missing.append(f"{name}: {arg}")
            return ""
        if op and op.endswith("-") and unset:
            return arg
        return value or ""

    return _VAR.sub(sub, node)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(path("compose.yaml").read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    missing: list[str] = []
    out = interpolate(raw, env_file(), missing)
    assert not missing, f"deploy/example.env lacks variables compose.yaml requires: {missing}"
    return out


def test_valid_against_the_compose_specification(raw, compose):
    validator = jsonschema.Draft7Validator(SCHEMA)
    for label, doc in (("as written", raw), ("interpolated with example.env", compose)):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"compose.yaml ({label}): " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


def test_the_schema_catches_a_mistake(raw):
    broken = {**raw, "services": {**raw["services"], "vad": {**raw["services"]["vad"], "restart_policy": "always"}}}
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(broken))


def test_every_service_redis_and_turn_are_there(compose):
    assert set(SERVICES) | {"redis", "coturn"} == set(compose["services"])
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--requirepass" in command
    assert "redis-data:/data" in redis["volumes"]


def _port(svc: dict, service: str) -> int:
    return int(svc["environment"][f"{service.upper()}_PORT"])


@pytest.mark.parametrize("service", SERVICES)
def test_service_env_ports_healthcheck_and_hardening_agree_with_the_code(compose, service):
    svc = compose["services"][service]
    env = svc["environment"]
    unknown = [k for k in env if not reads(service, k)]
    assert not unknown, f"{service} does not read {unknown} (see `python -m services.{service} env`)"
    assert env[f"{service.upper()}_HOST"] == "0.0.0.0"
    port = _port(svc, service)
    if service in GRPC_SERVICES:
        assert port == DEFAULT_PORTS[service]
        assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", "deploy.healthcheck", "grpc", str(port)]
    else:
        assert svc["healthcheck"]["test"][:5] == ["CMD", "python", "-m", "deploy.healthcheck", "http"]
        assert svc["healthcheck"]["test"][5] == f"https://127.0.0.1:{port}/healthz"
    assert svc["build"]["args"]["SERVICE"] == service
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    grace = float(env[f"{service.upper()}_SHUTDOWN_GRACE_S"])
    stop = float(svc["stop_grace_period"].rstrip("s"))
    needed = 2 * grace if service == "orchestrator" and env.get("ORCHESTRATOR_SESSION_PORT") else grace
    assert stop > needed, f"{service}: stop_grace_period {stop}s must exceed the drain ({needed}s)"
    for secret in secret_variables(service):  # secrets come from the env file, never written in
        assert re.fullmatch(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", str(_raw_env(service)[secret])), secret


def _raw_env(service: str) -> dict:
    return yaml.safe_load(path("compose.yaml").read_text())["services"][service]["environment"]


def test_only_the_page_the_api_and_turn_are_published(compose):
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"media", "orchestrator", "coturn"}
    media, orch = compose["services"]["media"], compose["services"]["orchestrator"]
    assert media["ports"] == [f"443:{_port(media, 'media')}/tcp"]
    assert media["environment"]["MEDIA_TLS_CERT"] and media["environment"]["MEDIA_TLS_KEY"]
    assert orch["ports"] == [f"127.0.0.1:{_port(orch, 'orchestrator')}:{_port(orch, 'orchestrator')}"]
    # media reaches Session.Connect on its own port, which is not published.
    session_port = orch["environment"]["ORCHESTRATOR_SESSION_PORT"]
    assert media["environment"]["ORCHESTRATOR_ADDR"] == f"dns:///orchestrator:{session_port}"
    assert session_port in orch["expose"]
    # The TURN relay range is what coturn is told to use.
    coturn = compose["services"]["coturn"]
    lo, hi = (a.split("=")[1] for a in coturn["command"] if a.startswith(("--min-port", "--max-port")))
    assert f"{lo}-{hi}:{lo}-{hi}/udp" in coturn["ports"]
    assert media["environment"]["MEDIA_ICE_SERVERS"].startswith("turn:")


def test_orchestrator_reaches_every_ai_service_and_redis(compose):
    orch = compose["services"]["orchestrator"]["environment"]
    for service in AI_SERVICES:
        assert orch[f"{service.upper()}_ADDR"] == f"dns:///{service}:{_port(compose['services'][service], service)}"
    password = env_file()["REDIS_PASSWORD"]
    assert orch["REDIS_URL"] == f"redis://:{password}@redis:6379/0"
    assert orch["ORCHESTRATOR_API_KEYS"] and orch["ORCHESTRATOR_JOIN_TOKEN_SECRET"]


def test_the_healthcheck_command_tells_serving_from_down(tmp_path):
    """The exact command compose runs in each container, against a real service and a closed port."""
    with ServiceProcess("video") as proc:
        ok = subprocess.run([sys.executable, "-m", "deploy.healthcheck", "grpc", str(proc.port)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    down = subprocess.run([sys.executable, "-m", "deploy.healthcheck", "--timeout", "0.5", "grpc", str(free_port())],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
