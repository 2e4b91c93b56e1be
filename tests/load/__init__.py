"""Load drivers: one per service (`python -m tests.load.NAME`), all on the shared harness."""
