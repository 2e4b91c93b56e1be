"""Voice activity detection: Silero VAD (ONNX) with params changeable mid-stream."""
