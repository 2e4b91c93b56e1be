"""Text to speech: Cartesia streaming or offline flite / espeak-ng."""
