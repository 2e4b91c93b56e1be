"""STT providers: base.py (the base classes and session events), one module or folder per
provider. The registry table in services/stt/config.py names them; services/stt/service.py wires
them."""
