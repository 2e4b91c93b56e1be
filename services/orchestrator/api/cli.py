"""Operator CLI on the typed client: `python -m services.orchestrator.cli COMMAND ...`
(the same commands are also subcommands of `python -m services.orchestrator`).

    python -m services.orchestrator.cli create --template backend-engineer --name Ada
    python -m services.orchestrator.cli mode IV_ID coding
    python -m services.orchestrator.cli watch IV_ID
    python -m services.orchestrator.cli transcript IV_ID
    python -m services.orchestrator.cli report IV_ID -o report.html
    python -m services.orchestrator.cli evaluate IV_ID --format markdown

The API key comes from --api-key, else ORCHESTRATOR_API_KEY, else the development key file that
an orchestrator started without ORCHESTRATOR_API_KEYS writes (.run/orchestrator-api-key).
The server address comes from --target, else ORCHESTRATOR_ADDR, else 127.0.0.1:50051.
Output is JSON (one object per line for watch and transcript).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from interview.v1 import session_pb2
from services.common.channels import service_target
from services.common.cli import Command
from services.orchestrator import plans
from services.orchestrator.api.client import CodeKind, InterviewsClient, Mode
from services.orchestrator.evaluation.cli_report import evaluate_command, report_command

DEV_KEY_FILE = Path(os.environ.get("ORCHESTRATOR_DEV_KEY_FILE", ".run/orchestrator-api-key"))
STATUSES = {"created": session_pb2.INTERVIEW_CREATED, "active": session_pb2.INTERVIEW_ACTIVE,
            "ended": session_pb2.INTERVIEW_ENDED}


def _print(message: Message, indent: int | None = 2) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=indent), flush=True)


def _api_key(args: argparse.Namespace) -> str:
    key = args.api_key or os.environ.get("ORCHESTRATOR_API_KEY", "")
    if not key and DEV_KEY_FILE.exists():
        key = DEV_KEY_FILE.read_text().strip()
    if not key:
        raise SystemExit("no API key: pass --api-key, set ORCHESTRATOR_API_KEY, or run the orchestrator "
                         f"without ORCHESTRATOR_API_KEYS so it writes {DEV_KEY_FILE}")
    return key


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="", help="orchestrator address (default ORCHESTRATOR_ADDR or 127.0.0.1:50051)")
    p.add_argument("--api-key", default="", help="API key (default ORCHESTRATOR_API_KEY or the dev key file)")


def _runner(body: Callable[[InterviewsClient, argparse.Namespace], Awaitable[Any]]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def main() -> None:
            async with InterviewsClient(args.target or service_target("orchestrator"), _api_key(args)) as client:
                await body(client, args)
        try:
            asyncio.run(main())
        except grpc.aio.AioRpcError as exc:
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        return 0
    return run


async def _create(c: InterviewsClient, a: argparse.Namespace) -> None:
    plan = plans.load_file(Path(a.plan_file)) if a.plan_file else None
    labels = dict(kv.split("=", 1) for kv in a.label)
    r = await c.create(template=a.template, plan=plan, candidate_name=a.name, candidate_email=a.email, role=a.role,
                       mode=Mode[a.mode.upper()] if a.mode else None, camera=a.camera, screen=a.screen,
                       request_id=a.request_id, labels=labels)
    print(f"interview {r.interview.id} ({r.interview.template or r.interview.plan.name}); phase {r.interview.phase_id}",
          file=sys.stderr)
    print(f"candidate link (expires {r.join_token_expires_at.ToJsonString()}):", file=sys.stderr)
    print(r.join_url, flush=True)


async def _get(c: InterviewsClient, a: argparse.Namespace) -> None:
    _print(await c.get(a.id))


async def _list(c: InterviewsClient, a: argparse.Namespace) -> None:
    async for iv in c.list_all(status=STATUSES.get(a.status, 0)):
        print(f"{iv.id}  {session_pb2.InterviewStatus.Name(iv.status):<20} {iv.phase_id:<12} "
              f"{iv.template or iv.plan.name:<20} {iv.candidate.name}")


async def _mode(c: InterviewsClient, a: argparse.Namespace) -> None:
    iv = await c.set_mode(a.id, Mode[a.mode.upper()], a.silence_timeout)
    print(f"{iv.id}: mode {Mode(iv.mode).name.lower()}")


async def _phase(c: InterviewsClient, a: argparse.Namespace) -> None:
    iv = await c.set_phase(a.id, a.phase)
    print(f"{iv.id}: phase {iv.phase_id}, mode {Mode(iv.mode).name.lower()}")


async def _code(c: InterviewsClient, a: argparse.Namespace) -> None:
    content = Path(a.file).read_text() if a.file else ""
    r = await c.post_code_event(a.id, CodeKind[a.kind.upper()], content=content, language=a.language, output=a.output)
    print(f"event {r.event_id}; mode {Mode(r.mode).name.lower()}")


async def _end(c: InterviewsClient, a: argparse.Namespace) -> None:
    iv = await c.end(a.id, a.reason)
    print(f"{iv.id}: ended ({iv.end_reason})")


async def _transcript(c: InterviewsClient, a: argparse.Namespace) -> None:
    async for entry in c.transcript(a.id):
        _print(entry, indent=None)


async def _watch(c: InterviewsClient, a: argparse.Namespace) -> None:
    async for event in c.watch(a.id, a.after):
        _print(event, indent=None)


async def _delete(c: InterviewsClient, a: argparse.Namespace) -> None:
    print(f"{a.id}: erased ({await c.delete(a.id)} keys)")


def _plans(args: argparse.Namespace) -> int:
    """List the bundled templates, or check plan files (exit 1 naming file and field)."""
    try:
        found = [plans.load_file(Path(f)) for f in args.files] if args.files else list(plans.load_dir().values())
    except plans.PlanError as exc:
        print(f"invalid plan: {exc}", file=sys.stderr)
        return 1
    for p in found:
        print(f"{p.name:<20} {len(p.phases)} phases, {sum(ph.time_budget_s for ph in p.phases) // 60} min: {p.title}")
    return 0


def _args(*specs: tuple[tuple[str, ...], dict[str, Any]]) -> Callable[[argparse.ArgumentParser], None]:
    def configure(p: argparse.ArgumentParser) -> None:
        _common(p)
        for names, kwargs in specs:
            p.add_argument(*names, **kwargs)
    return configure


ID = (("id",), {"help": "interview id (iv_...)"})
COMMANDS = [
    Command("create", "create an interview; prints the candidate link", _args(
        (("--template",), {"default": "demo", "help": "plan template: backend-engineer, frontend-engineer, demo"}),
        (("--plan-file",), {"default": "", "help": "inline plan from a YAML/JSON file instead of a template"}),
        (("--name",), {"default": "", "help": "candidate name"}),
        (("--email",), {"default": ""}),
        (("--role",), {"default": ""}),
        (("--mode",), {"default": "", "choices": ["", "conversational", "coding"]}),
        (("--camera",), {"action": "store_true", "help": "allow camera analysis (the candidate still consents)"}),
        (("--screen",), {"action": "store_true", "help": "allow screen analysis"}),
        (("--request-id",), {"default": "", "help": "idempotency key"}),
        (("--label",), {"action": "append", "default": [], "help": "key=value (repeatable)"})), _runner(_create)),
    Command("get", "show an interview as JSON", _args(ID), _runner(_get)),
    Command("list", "list interviews", _args((("--status",), {"default": "", "choices": ["", *STATUSES]})),
            _runner(_list)),
    Command("mode", "switch mode: coding or conversational", _args(
        ID, (("mode",), {"choices": ["coding", "conversational"]}),
        (("--silence-timeout",), {"type": int, "default": None, "help": "coding check-in after this many seconds"})),
        _runner(_mode)),
    Command("phase", "move to a phase of the plan", _args(ID, (("phase",), {})), _runner(_phase)),
    Command("code", "post a code-editor event", _args(
        ID, (("kind",), {"choices": ["edit", "run", "submit"]}), (("--file",), {"default": ""}),
        (("--language",), {"default": ""}), (("--output",), {"default": ""})), _runner(_code)),
    Command("end", "end an interview", _args(ID, (("--reason",), {"default": ""})), _runner(_end)),
    Command("transcript", "print the transcript (JSON lines)", _args(ID), _runner(_transcript)),
    Command("watch", "follow events (JSON lines); '' id = all interviews' lifecycle", _args(
        (("id",), {"nargs": "?", "default": ""}),
        (("--after",), {"default": "", "help": "resume after this event id ('$' = only new)"})), _runner(_watch)),
    Command("delete", "erase an interview (GDPR)", _args(ID), _runner(_delete)),
    Command("report", "write the recruiter report (one self-contained HTML file)", _args(
        ID, (("-o", "--output"), {"default": "report.html"}),
        (("--force",), {"action": "store_true", "help": "evaluate again (the new one supersedes the stored one)"})),
        _runner(report_command)),
    Command("evaluate", "print the interview's evaluation (advisory)", _args(
        ID, (("--format",), {"choices": ["json", "markdown"], "default": "json"}),
        (("--force",), {"action": "store_true", "help": "evaluate again (the new one supersedes the stored one)"})),
        _runner(evaluate_command)),
    Command("plans", "list bundled plan templates, or validate plan files",
            lambda p: p.add_argument("files", nargs="*"), _plans),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.orchestrator.cli", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help)
        cmd.configure(p)
        p.set_defaults(run=cmd.run)
    args = parser.parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
