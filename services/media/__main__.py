"""`python -m services.media`: serve (default), env, and `call URL` (an aiortc test call; see README).

media is an aiohttp app, not a gRPC server, so it has its own small entry instead of
services.common.cli.service_main; the `env` listing is the same.
"""
from __future__ import annotations

import argparse
import sys

from services.common import config
from services.media import cli
from services.media.config import MediaConfig
from services.media.service import main as serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.media")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP/WebRTC gateway (the default)")
    sub.add_parser("env", help="list the environment variables this service reads")
    call = sub.add_parser("call", help="join an interview link with an aiortc peer: play a WAV, record what is heard")
    cli.configure(call)
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        serve()
    elif args.command == "env":
        from services.common.tls import ClientTls  # its channel to the orchestrator

        for var, default, help_text in [*config.describe(MediaConfig, "media"), *config.describe(ClientTls)]:
            print(f"{var:<36} {default:<20} {help_text}")
    else:
        return cli.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
