"""Interview plans: YAML/JSON data files, schema-validated at load, converted to the Plan proto.

A plan with an error is rejected with the file and the field named (e.g. "backend.yaml:
phases[2].time_budget_s: -5 is less than the minimum of 1"), so an operator fixes it before
any interview uses it. Inline plans sent through the API go through the same schema.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from google.protobuf import json_format

from interview.v1 import common_pb2
from services.common import errors

PLANS_DIR = Path(__file__).parent / "plans"

PHASE_KINDS = {
    "introduction": common_pb2.PHASE_INTRODUCTION,
    "technical_screening": common_pb2.PHASE_TECHNICAL_SCREENING,
    "live_coding": common_pb2.PHASE_LIVE_CODING,
    "system_design": common_pb2.PHASE_SYSTEM_DESIGN,
    "behavioral": common_pb2.PHASE_BEHAVIORAL,
    "candidate_questions": common_pb2.PHASE_CANDIDATE_QUESTIONS,
    "wrap_up": common_pb2.PHASE_WRAP_UP,
}
MODES = {"conversational": common_pb2.MODE_CONVERSATIONAL, "coding": common_pb2.MODE_CODING}

_ID = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 4000}
_SHORT = {"type": "string", "minLength": 1, "maxLength": 200}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "title", "phases"],
    "properties": {
        "name": _ID,
        "title": _SHORT,
        "role": {"type": "string", "maxLength": 200},
        "version": {"type": "string", "maxLength": 50},
        "greeting": {"type": "string", "maxLength": 4000},
        "phases": {
            "type": "array", "minItems": 1, "maxItems": 30,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "title", "kind", "time_budget_s"],
                "properties": {
                    "id": _ID,
                    "title": _SHORT,
                    "kind": {"enum": list(PHASE_KINDS)},
                    "time_budget_s": {"type": "integer", "minimum": 1, "maximum": 4 * 3600},
                    "mode": {"enum": list(MODES)},
                    "goals": {"type": "array", "maxItems": 20, "items": _TEXT},
                    "questions": {
                        "type": "array", "maxItems": 50,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["id", "text"],
                            "properties": {
                                "id": _ID,
                                "text": _TEXT,
                                "follow_ups": {"type": "array", "maxItems": 20, "items": _TEXT},
                            },
                        },
                    },
                },
            },
        },
        "coding_problem": {
            "type": "object",
            "additionalProperties": False,
            "required": ["title", "statement"],
            "properties": {
                "title": _SHORT,
                "statement": {"type": "string", "minLength": 1, "maxLength": 20000},
                "language": {"type": "string", "maxLength": 50},
                "examples": {"type": "array", "maxItems": 20, "items": _TEXT},
            },
        },
        "rubric": {
            "type": "array", "maxItems": 50,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "description"],
                "properties": {
                    "id": _ID,
                    "description": _TEXT,
                    "weight": {"type": "integer", "minimum": 0, "maximum": 100},
                    "levels": {  # the scale, lowest first; absent = 1..4 with default anchors
                        "type": "array", "minItems": 2, "maxItems": 10,
                        "items": {"type": "object", "additionalProperties": False, "required": ["score", "anchor"],
                                  "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 100},
                                                 "anchor": _TEXT}}},
                    "keywords": {"type": "array", "maxItems": 30,
                                 "items": {"type": "string", "minLength": 1, "maxLength": 60}},
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class PlanError(errors.InvalidArgument, ValueError):
    """A plan that does not satisfy the schema; `field` is a path like phases[2].kind."""

    def __init__(self, source: str, field: str, problem: str):
        self.source, self.problem = source, problem
        super().__init__(f"{source}: {field or '(plan)'}: {problem}", field=field)


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _check_unique(data: Mapping[str, Any], source: str) -> None:
    seen_phases: set[str] = set()
    for i, phase in enumerate(data["phases"]):
        if phase["id"] in seen_phases:
            raise PlanError(source, f"phases[{i}].id", f"duplicate phase id {phase['id']!r}")
        seen_phases.add(phase["id"])
        seen_q: set[str] = set()
        for j, q in enumerate(phase.get("questions", [])):
            if q["id"] in seen_q:
                raise PlanError(source, f"phases[{i}].questions[{j}].id", f"duplicate question id {q['id']!r}")
            seen_q.add(q["id"])
    rubric_ids = [r["id"] for r in data.get("rubric", [])]
    for k, rid in enumerate(rubric_ids):
        if rid in rubric_ids[:k]:
            raise PlanError(source, f"rubric[{k}].id", f"duplicate rubric id {rid!r}")
        scores = [lv["score"] for lv in data["rubric"][k].get("levels", [])]
        if any(b <= a for a, b in zip(scores, scores[1:])):
            raise PlanError(source, f"rubric[{k}].levels", "level scores must increase, lowest first")


def validate(data: Any, source: str) -> None:
    """Raise PlanError naming the first (most specific) problem in `data`."""
    if not isinstance(data, Mapping):
        raise PlanError(source, "", "a plan must be a mapping with name, title and phases")
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(data))
    if error is not None:
        raise PlanError(source, _path(error.absolute_path), error.message)
    _check_unique(data, source)


def from_dict(data: Mapping[str, Any], source: str) -> common_pb2.Plan:
    """Validate a plan dict (the file format) and convert it to the Plan proto."""
    validate(data, source)
    plan = common_pb2.Plan(name=data["name"], title=data["title"], role=data.get("role", ""),
                           version=data.get("version", ""), greeting=data.get("greeting", ""))
    for ph in data["phases"]:
        phase = plan.phases.add(id=ph["id"], title=ph["title"], kind=PHASE_KINDS[ph["kind"]],
                                time_budget_s=ph["time_budget_s"], goals=ph.get("goals", []),
                                mode=MODES.get(ph.get("mode", ""), common_pb2.MODE_UNSPECIFIED))
        for q in ph.get("questions", []):
            phase.questions.add(id=q["id"], text=q["text"], follow_ups=q.get("follow_ups", []))
    if "coding_problem" in data:
        plan.coding_problem.CopyFrom(json_format.ParseDict(data["coding_problem"], common_pb2.CodingProblem()))
    for r in data.get("rubric", []):
        item = plan.rubric.add(id=r["id"], description=r["description"], weight=r.get("weight", 1),
                               keywords=r.get("keywords", []))
        for lv in r.get("levels", []):
            item.levels.add(score=lv["score"], anchor=lv["anchor"])
    return plan


def to_dict(plan: common_pb2.Plan) -> dict[str, Any]:
    """The file format of a Plan proto (inverse of from_dict), so inline plans share the schema."""
    kinds = {v: k for k, v in PHASE_KINDS.items()}
    modes = {v: k for k, v in MODES.items()}
    data: dict[str, Any] = json_format.MessageToDict(plan, preserving_proto_field_name=True)
    for i, ph in enumerate(data.get("phases", [])):
        ph["kind"] = kinds.get(plan.phases[i].kind, "unspecified")
        if plan.phases[i].mode:
            ph["mode"] = modes.get(plan.phases[i].mode, "unspecified")
        else:
            ph.pop("mode", None)
    data.setdefault("phases", [])
    return data


def validate_proto(plan: common_pb2.Plan, source: str = "plan") -> common_pb2.Plan:
    """Check an inline Plan (from the API) against the schema; returns a normalised copy."""
    return from_dict(to_dict(plan), source)


def phase_mode(phase: common_pb2.Phase) -> int:
    """The mode on entering `phase`: explicit, else CODING for live coding, else CONVERSATIONAL."""
    if phase.mode:
        return phase.mode
    return common_pb2.MODE_CODING if phase.kind == common_pb2.PHASE_LIVE_CODING else common_pb2.MODE_CONVERSATIONAL


def load_file(path: Path) -> common_pb2.Plan:
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PlanError(path.name, "", f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    plan = from_dict(data, path.name)
    if plan.name != path.stem:
        raise PlanError(path.name, "name", f"{plan.name!r} must match the file name {path.stem!r}")
    return plan


def load_dir(directory: Path = PLANS_DIR) -> dict[str, common_pb2.Plan]:
    """Every *.yaml / *.yml / *.json plan in `directory`, by template name; the first bad file raises."""
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    return {plan.name: plan for plan in map(load_file, files)}
