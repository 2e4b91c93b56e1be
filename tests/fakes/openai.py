"""A fake OpenAI-compatible Chat Completions server on loopback, speaking the real streaming wire.

POST {base}/chat/completions (base = http://127.0.0.1:P/v1) with `Authorization: Bearer KEY` and
`"stream": true`; the answer is Server-Sent Events `data: <ChatCompletionChunk JSON>\\n\\n`, every
payload checked against the openai SDK's own type, ending `data: [DONE]`:
- a first chunk with `delta: {"role": "assistant", "content": ""}` (as OpenAI sends it);
- text as `choices[0].delta.content` pieces;
- tool calls as `choices[0].delta.tool_calls` fragments: the first carries index, id, type and
  function.name with empty arguments, the arguments then follow in >= `arg_pieces` pieces; two
  calls are two indexes one after the other. With `whole_calls` every call comes complete, all
  in one chunk (as Ollama and llama.cpp server send them);
- a chunk with `finish_reason` ("stop", "tool_calls", "length") and an empty delta;
- when the request asks `stream_options.include_usage`, every chunk carries `"usage": null` and
  one last chunk has no choices and the usage, like OpenAI's.
Errors are OpenAI's JSON error body with the HTTP status (401, 429, 500, 503, ...).

`response_format` is checked as OpenAI checks it (400 with its wording otherwise): a type of text,
json_object (the messages must then say "json") or json_schema, whose `name` matches
^[a-zA-Z0-9_-]{1,64}$ and whose `schema` is an object; with `strict: true` the schema must be in
strict mode's subset (object root, every object closed with additionalProperties false and every
property required, none of the keywords strict mode refuses). What a test scripts as the answer
(inconsistent runs, made-up evidence, malformed JSON) is returned as is: the fake does not
constrain decoding.

Knobs: `script` (what the next requests answer), `first_delay_s` / `chunk_delay_s` (latency).
It records every request body and header set, and notices when the client closes a stream before
the end (`disconnects`, with the monotonic time it was noticed).
"""
from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.http_fake import HttpFake
from openai.types.chat import ChatCompletionChunk

from tests.fakes import validated

API_KEY = "sk-fake-openai-0123456789"
MODEL = "gpt-fake-mini"


@dataclass
class Reply:
    """One scripted answer: text pieces (one chunk each), then optional tool calls."""

    chunks: list[str] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    whole_calls: bool = False  # every tool call complete in one chunk instead of fragments
    arg_pieces: int = 3  # fragments the arguments of one call are split into (at least)
    finish: str = ""  # empty: "tool_calls" when there are calls, else "stop"
    status: int = 200  # != 200: answer with this HTTP error instead
    drop_after: int | None = None  # drop the TCP connection after this many text chunks


def _chunk(delta: dict[str, Any], finish: str | None = None, *, usage: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_765_000_000, "model": MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        payload["usage"] = None
    return payload


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(validated(ChatCompletionChunk, payload)).encode() + b"\n\n"


# Validated and encoded once per distinct chunk, so a load run measures the client, not the fake.
@functools.lru_cache(maxsize=1024)
def _sse_delta(delta_json: str, finish: str | None, usage: bool) -> bytes:
    return _sse(_chunk(json.loads(delta_json), finish, usage=usage))


def _delta(delta: dict[str, Any], finish: str | None = None, *, usage: bool) -> bytes:
    return _sse_delta(json.dumps(delta), finish, usage)


def split(text: str, pieces: int) -> list[str]:
    """`text` in `pieces` non-empty parts (fewer only if it is shorter than that)."""
    pieces = max(1, min(pieces, len(text)))
    step, extra = divmod(len(text), pieces)
    out, at = [], 0
    for i in range(pieces):
        n = step + (1 if i < extra else 0)
        out.append(text[at:at + n])
        at += n
    return out


def tool_call_deltas(calls: list[tuple[str, dict[str, Any]]], *, whole: bool, arg_pieces: int) -> list[dict[str, Any]]:
    """The `delta` objects that carry `calls`, fragmented the way OpenAI streams them."""
    if whole:  # every call complete, all in one delta (as Ollama sends them)
        complete = [{"index": index, "id": f"call_fake{index}", "type": "function",
                     "function": {"name": name, "arguments": json.dumps(args)}}
                    for index, (name, args) in enumerate(calls)]
        return [{"tool_calls": complete}] if complete else []
    out: list[dict[str, Any]] = []
    for index, (name, args) in enumerate(calls):
        call_id = f"call_fake{index}"
        arguments = json.dumps(args)
        out.append({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                    "function": {"name": name, "arguments": ""}}]})
        out.extend({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                   for piece in split(arguments, arg_pieces))
    return out


def usage_chunk(prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_765_000_000, "model": MODEL,
            "system_fingerprint": "fp_fake", "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": output_tokens,
                      "total_tokens": prompt_tokens + output_tokens}}


def error_body(status: int, message: str = "") -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
             429: "rate_limit_exceeded"}
    codes = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
    return {"error": {"message": message or f"fake openai error {status}",
                      "type": kinds.get(status, "server_error"), "param": None, "code": codes.get(status)}}


_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# What OpenAI's strict mode refuses (its documented unsupported keywords).
STRICT_REFUSED = ("allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "patternProperties",
                  "unevaluatedProperties", "unevaluatedItems", "propertyNames", "minProperties", "maxProperties",
                  "contains", "minContains", "maxContains", "uniqueItems", "oneOf")


def _strict_problem(node: Any, context: tuple[str, ...] = ()) -> str:
    """'' when `node` is in strict mode's subset, else OpenAI's kind of message about the first problem."""
    where = f"In context={context}, "
    if not isinstance(node, dict):
        return where + "schema must be a JSON Schema object."
    for key in STRICT_REFUSED:
        if key in node:
            return where + f"'{key}' is not permitted."
    types = node.get("type")
    if not context and types != "object":
        return where + "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{}\"'.".format(types)
    if types == "object" or (isinstance(types, list) and "object" in types):
        if node.get("additionalProperties", True) is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        props = node.get("properties") or {}
        missing = [k for k in props if k not in node.get("required", [])]
        if missing:
            return where + f"'required' is required to be supplied and to be an array including every key in " \
                           f"properties. Missing '{missing[0]}'."
        for k, v in props.items():
            if problem := _strict_problem(v, context + ("properties", k)):
                return problem
    if "items" in node and (problem := _strict_problem(node["items"], context + ("items",))):
        return problem
    for i, v in enumerate(node.get("anyOf", [])):
        if problem := _strict_problem(v, context + ("anyOf", str(i))):
            return problem
    return ""


def response_format_problem(body: dict[str, Any]) -> str:
    """'' when the request's response_format (if any) is one OpenAI accepts, else its 400 message."""
    fmt = body.get("response_format")
    if fmt is None:
        return ""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return ""
    if kind == "json_object":
        said = json.dumps([m.get("content") for m in body["messages"]]).lower()
        return "" if "json" in said else ("'messages' must contain the word 'json' in some form, to use "
                                          "'response_format' of type 'json_object'.")
    if kind != "json_schema":
        return f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'."
    spec = fmt.get("json_schema") or {}
    name = spec.get("name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        return "Invalid 'response_format.json_schema.name': string does not match pattern."
    if not isinstance(spec.get("schema"), dict):
        return "Invalid 'response_format.json_schema.schema': expected an object."
    if spec.get("strict") is True and (problem := _strict_problem(spec["schema"])):
        return f"Invalid schema for response_format '{name}': {problem}"
    return ""


class FakeOpenAI(HttpFake["Reply"]):
    """aiohttp server; `async with FakeOpenAI() as fake: fake.base_url` (ends in /v1)."""

    route = "/v1/chat/completions"

    def __init__(self, *, first_delay_s: float = 0.0, chunk_delay_s: float = 0.0,
                 default: Reply | None = None, port: int = 0, record: bool = True):
        super().__init__(default or Reply(chunks=["Thanks, ", "that helps. ", "What would you ", "try next?"]),
                         first_delay_s=first_delay_s, chunk_delay_s=chunk_delay_s, port=port, record=record)
        self.headers: list[dict[str, str]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response(error_body(401, "Incorrect API key provided."), status=401)
        body = await request.json()
        if self.record:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
        if body.get("stream") is not True or not body.get("model") or not body.get("messages"):
            return web.json_response(error_body(400, "this fake only streams: stream, model and messages are required"),
                                     status=400)
        if problem := response_format_problem(body):
            return web.json_response(error_body(400, problem), status=400)
        reply = self._next_reply(body)
        if reply.status != 200:
            return web.json_response(error_body(reply.status), status=reply.status)
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            await asyncio.sleep(self.first_delay_s)
            await resp.write(_delta({"role": "assistant", "content": ""}, usage=usage))
            for i, text in enumerate(reply.chunks):
                if i:
                    await asyncio.sleep(self.chunk_delay_s)
                if reply.drop_after is not None and i >= reply.drop_after:
                    assert request.transport is not None
                    request.transport.close()  # mid-stream failure, as a dying upstream looks
                    return resp
                await resp.write(_delta({"content": text}, usage=usage))
            for delta in tool_call_deltas(reply.calls, whole=reply.whole_calls, arg_pieces=reply.arg_pieces):
                await resp.write(_delta(delta, usage=usage))
            finish = reply.finish or ("tool_calls" if reply.calls else "stop")
            await resp.write(_delta({}, finish, usage=usage))
            if usage:
                prompt_tokens = len(json.dumps(body["messages"])) // 4
                output_tokens = sum(len(c) for c in reply.chunks) // 4 + 10 * len(reply.calls)
                await resp.write(_sse(usage_chunk(prompt_tokens, output_tokens)))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            self.completed += 1
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client goes away
            self.disconnects.append(time.monotonic())
            raise
        except ConnectionResetError:  # or a write fails first (aiohttp's error subclasses it)
            self.disconnects.append(time.monotonic())
        return resp


async def _serve(port: int, first_delay_s: float, chunk_delay_s: float) -> None:
    fake = FakeOpenAI(first_delay_s=first_delay_s, chunk_delay_s=chunk_delay_s, port=port, record=False)
    async with fake:
        print(fake.port, flush=True)  # the parent reads the port from the first line
        await asyncio.Event().wait()


def main() -> None:
    """`python -m tests.fakes.openai --first-delay-ms 50`: the fake as its own process (load runs)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--first-delay-ms", type=float, default=0.0)
    p.add_argument("--chunk-delay-ms", type=float, default=0.0)
    a = p.parse_args()
    try:
        asyncio.run(_serve(a.port, a.first_delay_ms / 1000, a.chunk_delay_ms / 1000))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
