"""Fuzzing support: hypothesis strategies for any protobuf message (from its descriptor, so new
fields are fuzzed without touching this file), the invariant every answer must meet, a canary
stream that must stay healthy while the fuzzer hammers the same process, and case counts.

Tests go through public gRPC/HTTP interfaces only, against real service processes.
"""
from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from google.protobuf import descriptor as d
from google.protobuf.message import Message
from hypothesis import strategies as st

CASES: collections.Counter[str] = collections.Counter()  # endpoint -> cases run (printed at the end)

# A clear answer: a status the contract names. UNKNOWN / INTERNAL (an unhandled exception),
# UNAVAILABLE (the process died or dropped us) and DATA_LOSS are failures.
CLEAR = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
         grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED,
         grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.ALREADY_EXISTS,
         grpc.StatusCode.CANCELLED}

SAMPLE_RATES = st.sampled_from([0, -16000, 1, 7999, 8000, 11025, 16000, 22050, 24000, 44100, 48000, 96000,
                                192001, 2**31 - 1])

_INT_RANGES = {
    d.FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), d.FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    d.FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1), d.FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
    d.FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1), d.FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    d.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), d.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    d.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), d.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Edges and small values more often than uniform noise."""
    edges = [v for v in (lo, hi, 0, 1, -1, 2, 512, 16000) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _scalar(field: d.FieldDescriptor, max_text: int, max_bytes: int) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INT_RANGES:
        return _ints(*_INT_RANGES[t])
    if t == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == d.FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if t == d.FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if t == d.FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=max_text), st.sampled_from(["", " ", "en", "en-US", "offline", "\x00",
                                                                       "x" * 300, "iv_" + "a" * 8, "ü🎤"]))
    if t == d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=max_bytes)
    if t == d.FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 1000))  # proto3 enums are open
    raise TypeError(field.type)


def messages(desc: d.Descriptor, *, depth: int = 0, max_depth: int = 3, max_text: int = 40,
             max_bytes: int = 2048, fixed: dict[str, st.SearchStrategy[Any]] | None = None
             ) -> st.SearchStrategy[Message]:
    """Any message of type `desc`: every field maybe set to a random value, at most one member of
    each oneof, nested messages down to `max_depth`. `fixed` overrides the strategies of scalar
    fields by name (e.g. every `sample_rate_hz`), in nested messages too."""
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(desc)
    fixed = fixed or {}

    def field_strategy(f: d.FieldDescriptor) -> st.SearchStrategy[Any]:
        if f.name in fixed and f.type != d.FieldDescriptor.TYPE_MESSAGE:  # by name, scalars only
            return fixed[f.name]
        if f.type == d.FieldDescriptor.TYPE_MESSAGE:
            if depth >= max_depth:
                return st.just(cls_of(f.message_type)())
            return messages(f.message_type, depth=depth + 1, max_depth=max_depth, max_text=max_text,
                            max_bytes=max_bytes, fixed=fixed)
        return _scalar(f, max_text, max_bytes)

    def cls_of(md: d.Descriptor) -> type[Message]:
        return message_factory.GetMessageClass(md)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        msg = cls()
        oneof_choice = {o.name: draw(st.sampled_from([None, *o.fields])) for o in desc.oneofs
                        if not (len(o.fields) == 1 and o.name == "_" + o.fields[0].name)}  # not `optional`
        for f in desc.fields:
            group = f.containing_oneof
            if group is not None and group.name in oneof_choice:
                if oneof_choice[group.name] is not f:
                    continue
            elif not draw(st.booleans()):
                continue
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                key_f, val_f = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
                entries = draw(st.dictionaries(_scalar(key_f, 10, 10), field_strategy(val_f), max_size=3))
                target = getattr(msg, f.name)
                for k, v in entries.items():
                    if val_f.type == d.FieldDescriptor.TYPE_MESSAGE:
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif f.is_repeated:
                getattr(msg, f.name).extend(draw(st.lists(field_strategy(f), max_size=3)))
            elif f.type == d.FieldDescriptor.TYPE_MESSAGE:
                getattr(msg, f.name).CopyFrom(draw(field_strategy(f)))
            else:
                setattr(msg, f.name, draw(field_strategy(f)))
        return msg

    return build()


def check_status(endpoint: str, code: grpc.StatusCode, details: str | None, allowed: set[grpc.StatusCode] = CLEAR
                 ) -> None:
    """The fuzz invariant on one answer."""
    assert code in allowed, f"{endpoint}: unclear status {code.name}: {details!r}"
    if code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
        assert details and len(details.strip()) >= 8, f"{endpoint}: {code.name} without a readable message: {details!r}"


class Canary:
    """A healthy stream on the fuzzed process: `exchange` (one valid round trip) runs in a loop in
    its own thread and event loop while the fuzzer runs; every failure is kept."""

    def __init__(self, name: str, exchange: Callable[[], Awaitable[None]], pause_s: float = 0.05):
        self.name = name
        self.exchange = exchange
        self.pause_s = pause_s
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"canary-{name}", daemon=True)

    def _run(self) -> None:
        async def loop() -> None:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    await asyncio.wait_for(self.exchange(), 20)
                    self.ok += 1
                except Exception as exc:  # noqa: BLE001 — recorded, asserted on at the end
                    self.failures.append(f"{type(exc).__name__}: {exc} after {time.monotonic() - started:.1f}s")
                await asyncio.sleep(self.pause_s)

        asyncio.run(loop())

    def __enter__(self) -> "Canary":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(30)

    def assert_healthy(self) -> None:
        assert not self.failures, f"canary {self.name} failed while fuzzing: {self.failures[:3]}"
        assert self.ok >= 1, f"canary {self.name} completed no exchange"


def stream_call(channel: grpc.Channel, method: str, requests: Iterable[Message], response_cls: type[Message],
                timeout: float, metadata: tuple[tuple[str, str], ...] = ()) -> tuple[grpc.StatusCode, str | None, int]:
    """One bidi call through the public interface: (status, details, responses read)."""
    call = channel.stream_stream(method, request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=response_cls.FromString)
    n = 0
    try:
        for _ in call(iter(list(requests)), timeout=timeout, metadata=metadata):
            n += 1
        return grpc.StatusCode.OK, None, n
    except grpc.RpcError as exc:
        return exc.code(), exc.details(), n
