"""`python -m services.llm chat`: a typed conversation with the provider chain, deltas printed as
they stream. For people trying prompts and plans, and for operators checking a deployment
(`--target host:port` goes through the running service; without it the chain runs in-process
from the same LLM_* / GEMINI_API_KEY / OPENAI_* variables the service reads).

It plays a minimal orchestrator: the agent speaks first, ADVANCE_PHASE moves the phase (and its
mode), END_INTERVIEW ends the chat. Slash commands: /code and /talk switch mode, /checkin,
/wrap, /resume (what a reconnect sounds like), /summary run those tasks, /quit.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

import grpc
from google.protobuf import json_format

from interview.v1 import common_pb2, llm_pb2, llm_pb2_grpc
from services.common import config
from services.common.channels import create_channel
from services.common.cli import Command
from services.llm import plan as planning
from services.common.errors import ServiceError
from services.llm.config import PROVIDERS, LlmConfig
from services.llm.servicer import Limits, validate

PERSONAS = {"interviewer": common_pb2.PERSONA_INTERVIEWER, "coach": common_pb2.PERSONA_COACH}
COMMANDS = {"/checkin": llm_pb2.TASK_CHECK_IN, "/wrap": llm_pb2.TASK_WRAP_UP, "/resume": llm_pb2.TASK_RESUME,
            "/summary": llm_pb2.TASK_SUMMARIZE}


def load_plan(template: str, plans_dir: str) -> common_pb2.Plan:
    """`default` (built in), a path to a plan file, or NAME looked up as NAME.yaml|.yml|.json in
    plans_dir. Files hold a Plan in protobuf JSON form (camelCase or snake_case keys)."""
    if template == "default":
        return planning.DEFAULT_PLAN
    candidates = [Path(template)] + [Path(plans_dir) / f"{template}{ext}" for ext in (".yaml", ".yml", ".json")]
    for path in candidates:
        if path.is_file():
            text = path.read_text()
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
            return json_format.ParseDict(data, common_pb2.Plan(), ignore_unknown_fields=True)
    raise SystemExit(f"no plan template {template!r}: not 'default', not a file, and not in {plans_dir}/")


class Chat:
    def __init__(self, plan: common_pb2.Plan, persona: int, provider: str, candidate: str):
        self.plan = plan
        self.persona = persona
        self.provider = provider
        self.candidate = candidate
        self.history: list[llm_pb2.ChatMessage] = []
        self.phase = plan.phases[0].id if plan.phases else ""
        self.mode = planning.phase_mode(plan.phases[0]) if plan.phases else common_pb2.MODE_CONVERSATIONAL
        self.ended = False

    def request(self, task: int) -> llm_pb2.GenerateRequest:
        ctx = llm_pb2.InterviewContext(plan=self.plan, phase_id=self.phase, mode=self.mode,
                                       candidate_name=self.candidate, role=self.plan.role)
        return llm_pb2.GenerateRequest(request_id=f"chat-{len(self.history)}", interview_id="cli-chat",
                                       persona=self.persona, context=ctx, history=self.history, task=task,
                                       options=llm_pb2.GenerationOptions(provider=self.provider))

    def apply(self, final: llm_pb2.GenerateFinal, task: int) -> None:
        if task == llm_pb2.TASK_SUMMARIZE:
            return
        if final.text:
            self.history.append(llm_pb2.ChatMessage(role=common_pb2.ROLE_AGENT, text=final.text,
                                                    mode=self.mode, phase_id=self.phase))
        for action in final.actions:
            if action.type == llm_pb2.ADVANCE_PHASE:
                self.move_to(action.target_phase_id)
            elif action.type == llm_pb2.END_INTERVIEW:
                self.ended = True

    def move_to(self, phase_id: str) -> None:
        index = planning.find_phase(self.plan, phase_id) if phase_id else None
        if index is None:  # "" = the next phase
            current = planning.find_phase(self.plan, self.phase) or 0
            index = min(current + 1, len(self.plan.phases) - 1)
        self.phase = self.plan.phases[index].id
        self.mode = planning.phase_mode(self.plan.phases[index])
        self.note(f"phase changed to {self.phase}")

    def note(self, text: str) -> None:
        self.history.append(llm_pb2.ChatMessage(role=common_pb2.ROLE_SYSTEM, text=text))


async def _remote(target: str, req: llm_pb2.GenerateRequest) -> AsyncIterator[llm_pb2.GenerateResponse]:
    async with create_channel(target) as channel:
        async for response in llm_pb2_grpc.LlmStub(channel).Generate(req, timeout=120):
            yield response


async def chat(args: argparse.Namespace, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    plan = load_plan(args.template, args.plans_dir)
    session = Chat(plan, PERSONAS[args.persona], args.provider, args.name)
    generation = None
    if not args.target:
        from services.llm.service import close_generation, make_generation

        cfg = config.load_or_exit(LlmConfig, "llm")
        generation = make_generation(cfg)
        limits = Limits(cfg.max_history_messages, cfg.max_history_chars)

    async def turn(task: int) -> None:
        req = session.request(task)
        t0 = time.monotonic()
        if generation is None:
            stream = _remote(args.target, req)
        else:
            validate(req, limits, generation.chain.names)
            stream = generation.run(req)
        print("interviewer> ", end="", file=out, flush=True)
        async for r in stream:
            if r.HasField("delta"):
                print(r.delta.text, end="", file=out, flush=True)
            elif r.HasField("provider_event"):
                e = r.provider_event
                print(f"[{common_pb2.ProviderEvent.Kind.Name(e.kind)} {e.from_provider}->{e.provider}: {e.reason}] ",
                      end="", file=out, flush=True)
            else:
                f = r.final
                acts = " ".join(llm_pb2.ActionType.Name(a.type) + (f"({a.target_phase_id})" if a.target_phase_id else "")
                                for a in f.actions)
                print(f"{' [' + acts + ']' if acts else ''}", file=out)
                session.apply(f, task)
                print(f"  ({f.provider}, first token {f.time_to_first_token_ms} ms, {int((time.monotonic() - t0) * 1000)} ms total, "
                      f"{llm_pb2.FinishReason.Name(f.finish_reason)}, now in phase {session.phase})", file=sys.stderr)

    try:
        await turn(llm_pb2.TASK_GREETING)
        loop = asyncio.get_running_loop()
        while not session.ended:
            print("you> ", end="", file=out, flush=True)
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text == "/quit":
                break
            if text in ("/code", "/talk"):
                session.mode = common_pb2.MODE_CODING if text == "/code" else common_pb2.MODE_CONVERSATIONAL
                session.note(f"mode switched to {common_pb2.Mode.Name(session.mode)}")
                print(f"(mode: {common_pb2.Mode.Name(session.mode)})", file=out)
                continue
            if text in COMMANDS:
                await turn(COMMANDS[text])
                continue
            session.history.append(llm_pb2.ChatMessage(role=common_pb2.ROLE_USER, text=text, mode=session.mode,
                                                        phase_id=session.phase))
            await turn(llm_pb2.TASK_REPLY)
    except ServiceError as exc:
        print(f"\nrequest rejected ({exc.code.name}): {exc}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as exc:
        print(f"\n{args.target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    finally:
        if generation is not None:
            await close_generation(generation)
    print(file=out)
    return 0


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--persona", choices=sorted(PERSONAS), default="interviewer")
    p.add_argument("--template", default="default", help="plan: 'default', a file, or NAME in --plans-dir")
    p.add_argument("--plans-dir", default="plans", help="where --template NAME is looked up (NAME.yaml|.yml|.json)")
    p.add_argument("--target", default="", help="host:port of a running llm service; default: in-process chain")
    p.add_argument("--provider", default="", help=f"force one provider ({'|'.join(PROVIDERS.names)}); default: the chain")
    p.add_argument("--name", default="", help="the candidate's name")


CHAT = Command("chat", "typed conversation with the provider chain (in-process or --target)", _configure,
               lambda args: asyncio.run(chat(args)))
