"""LLM providers: base.py (the base class and its events), one module per provider. The
registry table in services/llm/config.py names them; services/llm/service.py wires them."""
