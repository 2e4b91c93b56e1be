"""deploy/k8s: every overlay renders with `kubectl kustomize`, validates against the Kubernetes
schemas (kubernetes-validate, strict), and agrees with the code: ports and probes, variables each
service reads, secrets only from the Secret, connection-age grace, drains, hardening, and network
policies that let only the orchestrator reach the AI services and only media reach Session.Connect.
No cluster here: this renders and checks; it does not apply."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from services.common.server import DEFAULT_PORTS
from tests.deploy.code_facts import AI_SERVICES, GRPC_SERVICES, SERVICES, path, reads, secret_variables, variables
from tests.support.procs import ROOT

OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSION = "1.32.0"  # the kubectl on these machines; kubernetes-validate ships its schemas
PRESTOP_S = 5


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render the kustomize overlays (apt/snap: kubectl)")
    done = subprocess.run([kubectl, "kustomize", str(path("k8s", "overlays", overlay))], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def find(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def named(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env_values(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def port_of(c: dict, ref: int | str) -> int:
    if isinstance(ref, int):
        return ref
    (port,) = [p["containerPort"] for p in c["ports"] if p["name"] == ref]
    return port


def test_every_overlay_validates_against_the_kubernetes_schemas(rendered):
    import kubernetes_validate

    overlay, docs = rendered
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not problems, f"overlays/{overlay}:\n" + "\n".join(problems)


def test_the_validator_catches_a_mistake(rendered):
    import kubernetes_validate

    _, docs = rendered
    broken = yaml.safe_load(yaml.safe_dump(find(docs, "Deployment", "vad")))
    container(broken)["readinessProbe"]["grpc"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("service", SERVICES)
def test_ports_probes_and_variables_agree_with_the_code(rendered, service):
    overlay, docs = rendered
    deployment = find(docs, "Deployment", service)
    c = container(deployment)
    env = env_values(c)
    # only variables the service reads (a helper variable may be used as $(NAME) in another value)
    expanded = {m for v in env.values() if v for m in re.findall(r"\$\(([A-Z_]+)\)", v)}
    unknown = [k for k in env if not reads(service, k) and k not in expanded]
    assert not unknown, f"{service} does not read {unknown} (see `python -m services.{service} env`)"
    assert env[f"{service.upper()}_HOST"] == "0.0.0.0"
    port = int(env[f"{service.upper()}_PORT"])
    probes = [c[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    if service in GRPC_SERVICES:
        assert port == DEFAULT_PORTS[service]
        assert all(p["grpc"]["port"] == port for p in probes), "native gRPC probes on the service's port"
    else:
        assert all(p["httpGet"]["path"] == "/healthz" and port_of(c, p["httpGet"]["port"]) == port for p in probes)
        scheme = {p["httpGet"].get("scheme", "HTTP") for p in probes}
        assert scheme == ({"HTTPS"} if "MEDIA_TLS_CERT" in env else {"HTTP"})
    assert port in [p["containerPort"] for p in c["ports"]]
    # Secrets never as literal values.
    for secret in secret_variables(service):
        if secret in env:
            assert env[secret] is None, f"{secret} must come from a Secret (secretKeyRef), not a literal value"


@pytest.mark.parametrize("service", SERVICES)
def test_services_select_their_pods_on_the_right_ports(rendered, service):
    _, docs = rendered
    deployment = find(docs, "Deployment", service)
    c = container(deployment)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = [s for s in named(docs, "Service").values()
                if s["spec"]["selector"].items() <= labels.items()]
    assert services, f"no Service selects {service}"
    for svc in services:
        for p in svc["spec"]["ports"]:
            assert port_of(c, p["targetPort"]) in [cp["containerPort"] for cp in c["ports"]]
    if service in GRPC_SERVICES:  # streaming clients balance round_robin over every pod
        assert all(s["spec"].get("clusterIP") == "None" for s in services)


def test_orchestrator_and_media_find_their_peers_by_headless_dns(rendered):
    _, docs = rendered
    services = named(docs, "Service")
    orch = env_values(container(find(docs, "Deployment", "orchestrator")))
    for name in ("vad", "stt", "llm", "tts", "video"):
        target = orch[f"{name.upper()}_ADDR"]
        assert target == f"dns:///{name}:{DEFAULT_PORTS[name]}"
        assert services[name]["spec"]["clusterIP"] == "None"
    media = env_values(container(find(docs, "Deployment", "media")))
    m = re.fullmatch(r"dns:///([a-z-]+):(\d+)", media["ORCHESTRATOR_ADDR"])
    assert m, media["ORCHESTRATOR_ADDR"]
    session = services[m.group(1)]
    assert session["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in session["spec"]["ports"]] == [int(m.group(2))] == [int(orch["ORCHESTRATOR_SESSION_PORT"])]
    assert orch["REDIS_URL"].startswith("redis://orchestrator:$(REDIS_PASSWORD)@redis:6379/")


def test_streams_rebalance_and_outlive_the_longest_interview(rendered):
    """A max connection age makes clients reconnect (new streams reach new pods); its grace must
    cover the longest interview, bounded by the session credential's lifetime."""
    _, docs = rendered
    longest_s = float(variables("orchestrator")["ORCHESTRATOR_SESSION_CREDENTIAL_TTL_S"])
    for service in [*AI_SERVICES, "orchestrator"]:
        env = env_values(container(find(docs, "Deployment", service)))
        up = service.upper()
        assert 0 < float(env[f"{up}_MAX_CONNECTION_AGE_S"]) <= 3600
        assert float(env[f"{up}_MAX_CONNECTION_AGE_GRACE_S"]) >= longest_s


def test_termination_grace_covers_the_drain(rendered):
    _, docs = rendered
    for service in SERVICES:
        deployment = find(docs, "Deployment", service)
        env = env_values(container(deployment))
        drain = float(env[f"{service.upper()}_SHUTDOWN_GRACE_S"])
        if service == "orchestrator" and env.get("ORCHESTRATOR_SESSION_PORT"):
            drain *= 2  # the Session server drains after the API server
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > PRESTOP_S + drain


def test_every_pod_is_hardened_and_sized(rendered):
    _, docs = rendered
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name = doc["metadata"]["name"]
        pod = doc["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"], name
        assert pod.get("hostNetwork", False) is (name == "coturn"), f"{name}: only coturn uses host networking"


def test_autoscalers_and_disruption_budgets(rendered):
    _, docs = rendered
    hpas = named(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"media", *AI_SERVICES}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"] >= 1
    pdbs = named(docs, "PodDisruptionBudget")
    assert set(pdbs) == set(SERVICES)


def test_secrets_and_config_references_resolve(rendered):
    overlay, docs = rendered
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    documented = (ROOT / "docs" / "deploy.md").read_text()
    used_keys: set[str] = set()
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    cm = ref["configMapKeyRef"]
                    assert cm["key"] in configmaps[cm["name"]]["data"], f"{doc['metadata']['name']}: {cm}"
                if "secretKeyRef" in ref:
                    sk = ref["secretKeyRef"]
                    assert sk["name"].startswith("interviewer-secrets")
                    used_keys.add(sk["key"])
                    assert f"`{sk['key']}`" in documented, f"docs/deploy.md does not document the secret {sk['key']}"
                    if overlay == "dev":
                        assert sk["key"] in secrets[sk["name"]]["data"]
    if overlay == "prod":
        assert not secrets, "prod must not carry Secrets: they are created out of band"
    assert {"ORCHESTRATOR_API_KEYS", "ORCHESTRATOR_JOIN_TOKEN_SECRET", "REDIS_ORCHESTRATOR_PASSWORD",
            "DEEPGRAM_API_KEY", "GEMINI_API_KEY", "CARTESIA_API_KEY", "TURN_SECRET"} <= used_keys


def test_redis_is_durable_with_an_acl_user_per_client(rendered):
    _, docs = rendered
    redis = find(docs, "StatefulSet", "redis")
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("redis-config")]
    conf = cm["data"]["redis.conf"]
    assert "appendonly yes" in conf and "maxmemory-policy noeviction" in conf and "aclfile" in conf
    users = {line.split()[1]: line for line in cm["data"]["users.acl.tmpl"].splitlines() if line.startswith("user ")}
    assert users["default"].split()[2] == "off"
    assert {"orchestrator", "backend", "probe"} <= set(users)


# ---- network policies, evaluated as the API server's semantics define them ----

def _selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items() and not selector.get("matchExpressions")


def _peer_admits(peer: dict, source: dict) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], source["namespace_labels"]):
            return False
        return _selects(peer.get("podSelector", {}), source["labels"])
    return source["same_namespace"] and _selects(peer["podSelector"], source["labels"])


def allowed(docs: list[dict], source: dict, target: str, port_name: str) -> bool:
    pod = find(docs, "Deployment", target)["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (c,) = pod["spec"]["containers"]
    port = port_of(c, port_name)
    policies = [p for p in named(docs, "NetworkPolicy").values()
                if "Ingress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], labels)]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports_ok = not rule.get("ports") or any(port_of(c, p["port"]) == port for p in rule["ports"])
            peers_ok = not rule.get("from") or any(_peer_admits(peer, source) for peer in rule["from"])
            if ports_ok and peers_ok:
                return True
    return False


def pod_of(docs: list[dict], name: str) -> dict:
    labels = find(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    return {"labels": labels, "namespace_labels": {}, "same_namespace": True}


API_CLIENT = {"labels": {"interviewer.dev/api-client": "true"}, "namespace_labels": {}, "same_namespace": True}
BACKEND_NAMESPACE = {"labels": {"app": "backend"}, "namespace_labels": {"interviewer.dev/api-client": "true"},
                     "same_namespace": False}
STRANGER = {"labels": {"app": "other"}, "namespace_labels": {}, "same_namespace": True}


def test_network_policies_only_the_orchestrator_reaches_the_ai_services(rendered):
    _, docs = rendered
    for target in AI_SERVICES:
        for source_name in SERVICES:
            if source_name == target:
                continue
            expected = source_name == "orchestrator"
            assert allowed(docs, pod_of(docs, source_name), target, "grpc") is expected, f"{source_name} -> {target}"
        assert not allowed(docs, STRANGER, target, "grpc") and not allowed(docs, API_CLIENT, target, "grpc")


def test_network_policies_only_media_reaches_session_connect(rendered):
    _, docs = rendered
    for source_name in SERVICES:
        if source_name != "orchestrator":
            expected = source_name == "media"
            assert allowed(docs, pod_of(docs, source_name), "orchestrator", "session") is expected, source_name
    for source in (API_CLIENT, BACKEND_NAMESPACE, STRANGER):
        assert not allowed(docs, source, "orchestrator", "session")
    # the public API: labelled clients, not media, not strangers
    assert allowed(docs, API_CLIENT, "orchestrator", "grpc") and allowed(docs, BACKEND_NAMESPACE, "orchestrator", "grpc")
    assert not allowed(docs, pod_of(docs, "media"), "orchestrator", "grpc")
    assert not allowed(docs, STRANGER, "orchestrator", "grpc")
    # the candidate page: anyone
    assert allowed(docs, {"labels": {}, "namespace_labels": {}, "same_namespace": False}, "media", "web")


def test_old_flat_manifests_are_gone():
    assert not list((ROOT / "deploy" / "k8s").glob("*.yaml")), "deploy/k8s/*.yaml are replaced by base/ + overlays/"


SCRAPER = {"labels": {"app": "prometheus"}, "namespace_labels": {"interviewer.dev/metrics-scraper": "true"},
           "same_namespace": False}


def test_network_policies_admit_the_metrics_scraper_to_metrics_only(rendered):
    _, docs = rendered
    for target in SERVICES:
        pod = find(docs, "Deployment", target)["spec"]["template"]
        (c,) = pod["spec"]["containers"]
        assert port_of(c, "metrics") == int(pod["metadata"]["annotations"]["prometheus.io/port"]), target
        assert allowed(docs, SCRAPER, target, "metrics"), target
        assert not allowed(docs, STRANGER, target, "metrics"), target
        if target in GRPC_SERVICES:
            assert not allowed(docs, SCRAPER, target, "grpc"), target
