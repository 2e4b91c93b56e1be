"""`python -m services.orchestrator`: serve (default), env, and the service's operator tools."""
from services.common.cli import service_main
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.service import build

if __name__ == "__main__":
    service_main("orchestrator", OrchestratorConfig, build)
