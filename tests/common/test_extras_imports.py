"""Each service starts with only its own extra installed (what its image carries).

A clean venv per extra is slow to build, so each service runs in a subprocess whose import hook
refuses every third-party top-level module outside that extra's dependency closure (the base
dependencies, the extra's, their transitive requirements, and the model wheels installed with
--no-deps). `python -m services.NAME env` imports the whole service, so a stray import of another
extra's package (e.g. `av` in services/common) fails here as it would in the image.
"""
from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "ai-interviewer"
SERVICES = ["vad", "stt", "llm", "tts", "video", "orchestrator", "media"]
# Installed with --no-deps by the Makefile and the Dockerfile (their declared deps would pull torch);
# only their model files are used (located with find_spec, never imported).
NO_DEPS_WHEELS = {"vad": ["silero-vad", "pipecat-ai"]}

HOOK = """
import importlib.machinery, runpy, sys
blocked = set(sys.argv[2].split(","))

class WithoutOtherExtras:
    \"\"\"The path finder, minus the blocked packages: they look uninstalled (find_spec -> None).\"\"\"
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)

    @staticmethod
    def invalidate_caches():
        importlib.machinery.PathFinder.invalidate_caches()

sys.meta_path[:] = [WithoutOtherExtras if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
service = sys.argv[1]
sys.argv = [f"services.{service}", "env"]
runpy.run_module(f"services.{service}", run_name="__main__", alter_sys=True)
"""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: list[Requirement]) -> set[str]:
    """Distribution names reachable from `roots` (markers evaluated for this interpreter)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        extras = set(req.extras)
        key = name + "".join(f"[{e}]" for e in sorted(extras))
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:  # not installed here, so nothing can import it either
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}) or any(
                    sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(Requirement(str(sub).split(";")[0]))
    return {k for k in seen if "[" not in k}


def _project_requirements(extra: str) -> list[Requirement]:
    out = []
    for text in md.requires(PROJECT) or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            out.append(Requirement(str(req).split(";")[0]))
    return out


def blocked_modules(extra: str) -> set[str]:
    """Top-level modules installed here that a venv with only `extra` would not have."""
    allowed = _closure(_project_requirements(extra)) | {_norm(w) for w in NO_DEPS_WHEELS.get(extra, [])}
    blocked = set()
    for module, dists in md.packages_distributions().items():
        if module in sys.stdlib_module_names or module in ("services", "interview"):
            continue
        if not any(_norm(d) in allowed or _norm(d) == PROJECT for d in dists):
            blocked.add(module)
    return blocked


def test_the_hook_refuses_what_an_extra_lacks():
    assert "av" in blocked_modules("vad") and "av" not in blocked_modules("media")
    assert "redis" in blocked_modules("llm") and "redis" not in blocked_modules("orchestrator")
    assert "grpc" not in blocked_modules("tts")  # a base dependency


@pytest.mark.parametrize("service", SERVICES)
def test_service_imports_with_only_its_extra(service):
    try:
        md.requires(PROJECT)
    except md.PackageNotFoundError:
        pytest.skip("the project is not installed (make install)")
    done = subprocess.run([sys.executable, "-c", HOOK, service, ",".join(sorted(blocked_modules(service)))],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"services.{service} needs a package outside its extra:\n{done.stderr[-3000:]}"
    assert f"{service.upper()}_PORT" in done.stdout
