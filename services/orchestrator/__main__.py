"""`python -m services.orchestrator`: serve (default), env, and the API CLI (see cli.py)."""
from services.common.cli import service_main
from services.orchestrator.api.cli import COMMANDS
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.service import build

if __name__ == "__main__":
    service_main("orchestrator", OrchestratorConfig, build, commands=COMMANDS)
