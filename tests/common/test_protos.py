"""Generated stubs must match protos/: run `make proto` after editing a .proto file."""
import filecmp
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT


def test_generated_stubs_match_protos(tmp_path: Path):
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", "protos", f"--python_out={tmp_path}",
                    f"--grpc_python_out={tmp_path}", f"--mypy_out={tmp_path}", f"--mypy_grpc_out={tmp_path}",
                    *protos], cwd=ROOT, check=True, capture_output=True)
    def stubs(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for pattern in ("*_pb2*.py", "*_pb2*.pyi") for p in root.rglob(pattern))

    generated, committed = stubs(tmp_path), stubs(ROOT / "interview")
    generated = [Path(*p.parts[1:]) for p in generated]  # drop the leading "interview/"

    assert generated == committed, "stub files differ from protos/: run `make proto`"
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / 'interview' / p, ROOT / 'interview' / p, shallow=False)]
    assert not stale, f"stale generated stubs {stale}: run `make proto`"


def test_contracts_are_one_versioned_package():
    from interview.v1 import common_pb2

    assert common_pb2.DESCRIPTOR.package == "interview.v1"
