"""`python -m services.video`: serve (default), env, and the service's operator tools."""
from services.common.cli import service_main
from services.video.cli import COMMANDS
from services.video.config import VideoConfig
from services.video.service import build

if __name__ == "__main__":
    service_main("video", VideoConfig, build, COMMANDS)
