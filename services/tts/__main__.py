"""`python -m services.tts`: serve (default), env, and `say` (synthesise text to a WAV file)."""
from services.common.cli import service_main
from services.tts.cli import COMMANDS
from services.tts.config import TtsConfig
from services.tts.service import build

if __name__ == "__main__":
    service_main("tts", TtsConfig, build, COMMANDS)
