"""`python -m services.stt`: serve (default), env, and `transcribe FILE.wav` for operators."""
from services.common.cli import Command, service_main
from services.stt import transcribe
from services.stt.config import SttConfig
from services.stt.service import build

if __name__ == "__main__":
    service_main("stt", SttConfig, build, commands=[
        Command("transcribe", "stream a WAV file through Stt.Recognize and print the transcript",
                transcribe.configure, transcribe.run),
    ])
