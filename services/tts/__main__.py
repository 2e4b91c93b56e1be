"""`python -m services.tts`: serve (default), env, and the service's operator tools."""
from services.common.cli import service_main
from services.tts.config import TtsConfig
from services.tts.service import build

if __name__ == "__main__":
    service_main("tts", TtsConfig, build)
