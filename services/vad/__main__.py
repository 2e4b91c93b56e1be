"""`python -m services.vad`: serve (default), env, `segments FILE.wav` (speech segments as JSON) and
`turns FILE.wav` (a turn score at every pause, JSON lines)."""
from services.common.cli import Command, service_main
from services.vad import cli
from services.vad.config import VadConfig
from services.vad.service import build

if __name__ == "__main__":
    service_main("vad", VadConfig, build, commands=[
        Command("segments", "print the speech segments of a WAV file as JSON (same detector as the service)",
                cli.configure, cli.run),
        Command("turns", "print a turn score (JSON line) at every pause of a WAV file (same code as the service)",
                cli.configure_turns, cli.run_turns),
    ])
