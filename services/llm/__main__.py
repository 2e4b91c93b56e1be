"""`python -m services.llm`: serve (default), env, and the service's operator tools."""
from services.common.cli import service_main
from services.llm.config import LlmConfig
from services.llm.service import build

if __name__ == "__main__":
    service_main("llm", LlmConfig, build)
