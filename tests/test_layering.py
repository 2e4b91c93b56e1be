"""The layering contract (pyproject.toml [tool.importlinter], docs/architecture.md) holds, and
breaking it fails: lint-imports on the tree, then on copies with one forbidden import each."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BESIDE = Path(sys.executable).parent / "lint-imports"  # the interpreter's own (a venv's), else PATH's
LINT = str(BESIDE) if BESIDE.exists() else shutil.which("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    if LINT is None:
        pytest.fail("lint-imports not found: install the dev extra (pip install -e '.[dev]')")
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_the_tree_keeps_every_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("services/orchestrator/conversation/listener.py",
     "from services.orchestrator.conversation import floor", "import nothing from floor or session"),
    ("services/orchestrator/conversation/interview_view.py",
     "from services.orchestrator.conversation.session import Session", "import nothing from floor or session"),
    ("services/common/retry.py", "import services.llm.service", "services.common imports no service"),
    ("services/tts/__init__.py", "import services.stt", "no service imports another service"),
    ("services/orchestrator/store/store.py", "from services.orchestrator.api import tokens", "orchestrator rooms"),
])
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    shutil.copytree(ROOT / "services", tmp_path / "services", ignore=shutil.ignore_patterns("__pycache__", "*.onnx"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # noqa: E402 (the test's breach)\n")
    result = lint(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in " ".join(broken.split()), result.stdout


def test_conversation_rooms_stay_small():
    """The split holds: no module in conversation/ over 300 lines, session.py (lifecycle and
    routing only) at most 250."""
    folder = Path(__file__).resolve().parents[1] / "services" / "orchestrator" / "conversation"
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert sizes["session.py"] <= 250, sizes["session.py"]
    assert not {n: k for n, k in sizes.items() if k > 300}, sizes
