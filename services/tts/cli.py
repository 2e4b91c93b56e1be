"""`python -m services.tts say "TEXT" -o out.wav`: speak through the service's own streaming path
(validation, segmentation, normalisation, provider chain), without a server."""
from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

import numpy as np

from interview.v1 import tts_pb2
from services.common import config
from services.common.audio import write_wav
from services.common.cli import Command
from services.tts.config import PROVIDERS, SUPPORTED_RATES, TtsConfig
from services.tts.service import make_servicer
from services.common.errors import ServiceError
from services.tts.synthesis import Synthesis


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help="what to say (markdown is fine: it is normalised like LLM output)")
    p.add_argument("-o", "--output", required=True, help="WAV file to write")
    p.add_argument("--provider", choices=("", *PROVIDERS.names), default="",
                   help="default: the server's chain (TTS_PROVIDERS)")
    p.add_argument("--rate", type=int, default=24000, choices=SUPPORTED_RATES, help="output sample rate")
    p.add_argument("--voice", default="", help="offline: rms, slt, awb, kal16, kal, espeak-ng; cartesia: a voice id")
    p.add_argument("--language", default="en")


async def _say(args: argparse.Namespace) -> int:
    cfg = config.load_or_exit(TtsConfig, "tts")
    servicer, providers = make_servicer(cfg)
    await servicer.offline.warm()
    try:
        utterance, start = servicer.check(tts_pb2.TtsConfig(
            provider=args.provider, voice=args.voice, sample_rate_hz=args.rate, language=args.language))

        async def requests() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
            yield tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(text=args.text))
            yield tts_pb2.SynthesizeRequest(end=tts_pb2.EndOfText())

        pcm: list[bytes] = []
        async for r in Synthesis(servicer.chain, utterance, servicer.limits, start).run(requests()):
            kind = r.WhichOneof("msg")
            if kind == "audio":
                pcm.append(r.audio.pcm)
            elif kind == "provider_event":
                print(f"provider: {r.provider_event.from_provider} -> {r.provider_event.provider}: "
                      f"{r.provider_event.reason}", file=sys.stderr)
            elif kind == "done":
                d = r.done
                print(f"{args.output}: {d.total_samples / utterance.rate:.2f} s at {utterance.rate} Hz, "
                      f"{d.segments} pieces, provider {d.provider}: {d.spoken_text!r}", file=sys.stderr)
        write_wav(args.output, np.frombuffer(b"".join(pcm), dtype="<i2"), utterance.rate)
        return 0
    except ServiceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        for provider in providers:
            await provider.aclose()


COMMANDS = [Command("say", "synthesise TEXT to a WAV file through the streaming path", _configure,
                    lambda args: asyncio.run(_say(args)))]
