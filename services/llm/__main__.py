"""`python -m services.llm`: serve (default), env, chat (typed conversation with the chain)."""
from services.common.cli import service_main
from services.llm.cli import CHAT
from services.llm.config import LlmConfig
from services.llm.service import build

if __name__ == "__main__":
    service_main("llm", LlmConfig, build, commands=[CHAT])
