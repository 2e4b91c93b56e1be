"""Interview plans: the bundled templates load; files with errors are rejected naming file and field."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from interview.v1 import common_pb2
from services.orchestrator import plans
from tests.support.procs import ROOT


def test_bundled_templates_load_and_convert():
    templates = plans.load_dir()
    assert {"backend-engineer", "frontend-engineer", "demo"} <= set(templates)
    backend = templates["backend-engineer"]
    kinds = [p.kind for p in backend.phases]
    assert kinds == [common_pb2.PHASE_INTRODUCTION, common_pb2.PHASE_TECHNICAL_SCREENING, common_pb2.PHASE_LIVE_CODING,
                     common_pb2.PHASE_SYSTEM_DESIGN, common_pb2.PHASE_BEHAVIORAL, common_pb2.PHASE_CANDIDATE_QUESTIONS,
                     common_pb2.PHASE_WRAP_UP]
    assert backend.coding_problem.title and backend.rubric and all(p.time_budget_s > 0 for p in backend.phases)
    assert backend.phases[0].questions[0].follow_ups
    coding = next(p for p in backend.phases if p.id == "coding")
    assert plans.phase_mode(coding) == common_pb2.MODE_CODING
    assert plans.validate_proto(backend) == backend  # the inline path accepts what the file path produced


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("mutate, field, words", [
    (lambda d: d["phases"][1].update(time_budget_s=-5), "phases[1].time_budget_s", "minimum"),
    (lambda d: d["phases"][0].update(kind="karaoke"), "phases[0].kind", "karaoke"),
    (lambda d: d["phases"][2].pop("title"), "phases[2]", "'title' is a required property"),
    (lambda d: d["phases"][2].update(id="intro"), "phases[2].id", "duplicate phase id"),
    (lambda d: d["phases"][0]["questions"][0].update(txt="typo"), "phases[0].questions[0]", "txt"),
    (lambda d: d.update(phases=[]), "phases", "should be non-empty"),
    (lambda d: d.update(name="other"), "name", "must match the file name"),
])
def test_plan_errors_name_file_and_field(tmp_path: Path, mutate, field: str, words: str):
    data = plans.to_dict(plans.load_dir()["demo"])
    mutate(data)
    path = _write(tmp_path, "demo.yaml", data)
    with pytest.raises(plans.PlanError) as info:
        plans.load_dir(tmp_path)
    assert info.value.source == "demo.yaml" and info.value.field == field and words in info.value.problem
    assert str(info.value).startswith(f"demo.yaml: {field}:")


def test_unparsable_file_is_named(tmp_path: Path):
    _write(tmp_path, "broken.yaml", "name: broken\nphases: [\n")
    with pytest.raises(plans.PlanError, match=r"^broken.yaml: \(plan\): not valid YAML"):
        plans.load_dir(tmp_path)


def test_cli_checks_plan_files(tmp_path: Path):
    data = plans.to_dict(plans.load_dir()["demo"])
    data["rubric"][0]["weight"] = "heavy"
    bad = _write(tmp_path, "demo.yaml", data)
    proc = subprocess.run([sys.executable, "-m", "services.orchestrator.cli", "plans", str(bad)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "demo.yaml: rubric[0].weight" in proc.stderr
    good = subprocess.run([sys.executable, "-m", "services.orchestrator.cli", "plans"], cwd=ROOT,
                          capture_output=True, text=True)
    assert good.returncode == 0 and "backend-engineer" in good.stdout
