"""`python -m services.stt`: serve (default), env, and the service's operator tools."""
from services.common.cli import service_main
from services.stt.config import SttConfig
from services.stt.service import build

if __name__ == "__main__":
    service_main("stt", SttConfig, build)
