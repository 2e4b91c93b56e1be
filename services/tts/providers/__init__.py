"""TTS providers: base.py (the base classes a provider implements), one module per provider. The
registry table in services/tts/config.py names them; services/tts/service.py wires them."""
