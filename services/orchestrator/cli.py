"""`python -m services.orchestrator.cli ...`: the operator CLI's entry point (it lives in api/cli.py)."""
from services.orchestrator.api.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
