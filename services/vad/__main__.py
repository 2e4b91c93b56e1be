"""`python -m services.vad`: serve (default), env, and the service's operator tools."""
from services.common.cli import service_main
from services.vad.config import VadConfig
from services.vad.service import build

if __name__ == "__main__":
    service_main("vad", VadConfig, build)
