"""`python -m services.media call LINK`: join an interview like a candidate would, from the command
line (an aiortc peer): plays a WAV as the microphone, records what the interviewer says to a WAV,
prints the page events (captions, state) as JSON lines. For checking a deployment end to end."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

import numpy as np

from services.common.audio import read_wav, resample, write_wav
from services.media.client import RATE, ClientPeer, OfferRefused, WavTrack
from services.media.gateway import restrict_ice_to_loopback


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("link", help="the candidate's join link: BASE/i/<interview id>#token=<join token>")
    p.add_argument("--wav", default="", help="PCM16 WAV played as the microphone (default: silence)")
    p.add_argument("--lead-silence", type=float, default=0.0, help="seconds of silence before the WAV")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to stay in the call")
    p.add_argument("--out", default="", help="write what was heard to this WAV (16 kHz mono)")
    p.add_argument("--loopback-only", action="store_true", help="offer only 127.0.0.1 ICE candidates")


async def _call(args: argparse.Namespace) -> int:
    samples, rate = read_wav(args.wav) if args.wav else (np.zeros(0, np.int16), RATE)
    client = ClientPeer.from_link(args.link, WavTrack(samples, rate, lead_silence_s=args.lead_silence))
    try:
        await client.connect()
    except OfferRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    took = await client.wait_connected(10)
    print(json.dumps({"event": "connected", "ice_s": round(took, 3)}), flush=True)
    seen = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + args.seconds
    while loop.time() < end:
        await asyncio.sleep(0.1)
        for event in client.events[seen:]:
            print(json.dumps(event), flush=True)
        seen = len(client.events)
        if any(e.get("type") == "end" for e in client.events):
            break
    await client.hangup()
    if args.out:
        write_wav(args.out, resample(client.heard.signal(), RATE, 16000), 16000)
        print(json.dumps({"event": "recorded", "file": args.out}), flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.loopback_only:
        restrict_ice_to_loopback()
    return asyncio.run(_call(args))
