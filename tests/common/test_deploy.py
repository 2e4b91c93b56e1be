"""The deployment files agree with the code: every service, its port, gRPC probes, hardening.
(No Docker engine or cluster exists here, so this is a consistency check, not a deployment.)"""
from pathlib import Path

import pytest
import yaml

from services.common.server import DEFAULT_PORTS
from tests.support.procs import ROOT

DEPLOY = ROOT / "deploy"


@pytest.mark.parametrize("service", sorted(DEFAULT_PORTS))
def test_k8s_manifest_probes_the_service_port(service):
    deployment, svc = list(yaml.safe_load_all((DEPLOY / "k8s" / f"{service}.yaml").read_text()))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port = DEFAULT_PORTS[service]
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["grpc"]["port"] == port
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env[f"{service.upper()}_SHUTDOWN_GRACE_S"]) < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert svc["spec"]["ports"][0]["port"] == port and svc["spec"]["clusterIP"] == "None"
