"""`python -m services.vad`: serve (default), env, and `segments FILE.wav` (speech segments as JSON)."""
from services.common.cli import Command, service_main
from services.vad import cli
from services.vad.config import VadConfig
from services.vad.service import build

if __name__ == "__main__":
    service_main("vad", VadConfig, build, commands=[
        Command("segments", "print the speech segments of a WAV file as JSON (same detector as the service)",
                cli.configure, cli.run),
    ])
