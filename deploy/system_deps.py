"""What `make run` and `make test` need from the system, and installing what is missing.

Debian packages are installed with apt-get when running as root; otherwise one clear list of
what to install is printed (exit 1), instead of a failure deep inside a test or a service.
Only the standard library: this runs before the project's virtualenv exists.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

# Debian package -> how to tell it is there (a command on PATH, a file, or a Python module for venv).
PACKAGES = {
    "python3-venv": "python:ensurepip",
    "redis-server": "redis-server",
    "flite": "flite",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
    "tesseract-ocr": "tesseract",
    "fonts-dejavu-core": "file:/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "openssl": "openssl",
    "chromium": "chromium",
    "chromium-driver": "chromedriver",
}


def present(probe: str) -> bool:
    if probe.startswith("file:"):
        return os.path.exists(probe.split(":", 1)[1])
    if probe.startswith("python:"):
        try:
            __import__(probe.split(":", 1)[1])
        except ImportError:
            return False
        return True
    return shutil.which(probe) is not None


def missing() -> list[str]:
    return [pkg for pkg, probe in PACKAGES.items() if not present(probe)]


def main() -> int:
    todo = missing()
    if not todo:
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing Debian packages: {' '.join(todo)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *todo], check=True, env=env)
        still = missing()
        if not still:
            return 0
        todo = still
    print("Missing system packages. Install them, then run the command again:\n"
          f"  sudo apt-get install --no-install-recommends {' '.join(todo)}\n"
          "(Debian/Ubuntu names; elsewhere install Redis 7, flite, espeak-ng, sox, tesseract 5, Chromium and "
          "chromedriver, and Python's venv module.)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
