"""Command-line entry shared by every service: `python -m services.NAME [serve|env|<tool>]`.

`serve` (the default) runs the gRPC server; `env` lists the environment variables the service
reads; services add their own operator tools (e.g. `vad segments`, `stt transcribe`).
"""
from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.common import config
from services.common.server import ServiceRuntime, run_service


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


def service_main(name: str, config_cls: type, build: Callable[[Any, ServiceRuntime], Awaitable[None]],
                 commands: Sequence[Command] = (), argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gRPC server (the default)")
    sub.add_parser("env", help="list the environment variables this service reads")
    for cmd in commands:
        p = sub.add_parser(cmd.name, help=cmd.help)
        cmd.configure(p)
        p.set_defaults(run=cmd.run)
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        run_service(name, config_cls, build)
    elif args.command == "env":
        from services.common.tls import ClientTls  # every service is also a client (health checks, CLIs)

        for var, default, help_text in [*config.describe(config_cls, name), *config.describe(ClientTls)]:
            print(f"{var:<36} {default:<20} {help_text}")
    else:
        raise SystemExit(args.run(args) or 0)
