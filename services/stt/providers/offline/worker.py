"""A decoder worker process: `python -m services.stt.providers.offline.worker` (started by
workers.py beside it).

pocketsphinx's process_raw holds the GIL, so one process decodes on one core; the service runs one
of these per core. A worker owns a few decoders (model loaded once per decoder, reused across
utterances) and the state of the utterances open on them, so an utterance stays in one worker.

Protocol on stdin/stdout: frames of a 4-byte big-endian length + a pickled tuple (parent and worker
are the same code, so pickle is safe here). Requests are (req_id, op, decoder_id, *args); replies are
(req_id, ok, result-or-error-message). Requests for different decoders may be answered out of order:
an utterance's end is served before pending audio of other utterances, since a caller is waiting for
that final result while audio only has to keep up with real time.

An "abandon" (the stream ended or was cancelled) goes first and takes that decoder's queued requests
with it (answered "abandoned"), and a batch being decoded for it stops at its next slice
(`SLICE_BYTES`): audio of a stream that is gone must not delay the live ones (before this, six
ended streams' 32 s chunks held a live stream's FINALIZE for 12–52 s).
"""
from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, BinaryIO

from services.stt.providers.offline.decoder import Utterance, new_decoder

HEADER = struct.Struct(">I")
SLICE_BYTES = 32_000  # audio decoded between two checks for an abandon (1 s at 16 kHz)

Request = tuple[Any, ...]  # (req_id, op, decoder_id, *args)


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


def frame(obj: object) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def is_end(req: Request) -> bool:
    return req[1] == "utt" and bool(req[5])


def next_request(pending: Sequence[Request]) -> Request:
    """An abandon at the head (it frees a decoder and stops work nobody waits for), else the
    oldest utterance end if any (a caller waits for it), else the oldest request."""
    if pending[0][1] == "abandon":
        return pending[0]
    return next((r for r in pending if is_end(r)), pending[0])


class Abandoned(Exception):
    """The utterance's stream is gone: its decoding stopped."""


class Worker:
    def __init__(self) -> None:
        self.decoders: dict[int, Any] = {}
        self.utterances: dict[int, Utterance] = {}
        self.abandoning: set[int] = set()  # decoder ids with an "abandon" on its way (set by the reader)

    def handle(self, op: str, did: int, *args: Any) -> Any:
        if op == "new":
            self.decoders[did] = new_decoder()
            return None
        if op == "utt":  # (begin (rate, interim_samples, cmn or None) or None, s16le bytes, end?)
            begin, pcm, end = args
            if begin is not None:
                self.handle("abandon", did)
                self.utterances[did] = Utterance(self.decoders[did], *begin)
            utt = self.utterances[did]
            partial = None
            for i in range(0, len(pcm), SLICE_BYTES):
                if did in self.abandoning:
                    raise Abandoned("abandoned")
                partial = utt.feed(pcm[i:i + SLICE_BYTES]) or partial
            if not end:
                return partial, None
            del self.utterances[did]
            return None, utt.end()
        if op == "abandon":
            self.abandoning.discard(did)
            utt = self.utterances.pop(did, None)
            if utt is not None:
                utt.abandon()
            return None
        if op == "drop":
            self.utterances.pop(did, None)
            self.decoders.pop(did, None)
            return None
        raise ValueError(f"unknown op {op!r}")


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Read requests on a thread (so ends can jump the queue), decode on this one."""
    pending: deque[Request] = deque()
    dropped: list[int] = []  # request ids taken away by an abandon, still to be answered
    ready = threading.Condition()
    closed = False
    worker = Worker()

    def reader() -> None:
        nonlocal closed
        while (body := read_frame(inp)) is not None:
            req = pickle.loads(body)
            with ready:
                if req[1] == "abandon":  # first, and nothing queued for that decoder is decoded
                    worker.abandoning.add(req[2])
                    stale = [r for r in pending if r[2] == req[2]]
                    for r in stale:
                        pending.remove(r)
                    dropped.extend(r[0] for r in stale)
                    pending.appendleft(req)
                else:
                    pending.append(req)
                ready.notify()
        with ready:
            closed = True
            ready.notify()

    threading.Thread(target=reader, name="stt-worker-reader", daemon=True).start()
    while True:
        with ready:
            while not pending and not closed and not dropped:
                ready.wait()
            gone, dropped[:] = list(dropped), []
            req = next_request(pending) if pending else None
            if req is not None:
                pending.remove(req)
        for req_id in gone:
            out.write(frame((req_id, False, "Abandoned: the stream ended")))
        if req is None:
            out.flush()
            if closed and not pending:
                return
            continue
        req_id, op, did, *args = req
        try:
            reply = (req_id, True, worker.handle(op, did, *args))
        except Exception as exc:  # reported to the caller's stream; the worker keeps serving others
            reply = (req_id, False, f"{type(exc).__name__}: {exc}")
        out.write(frame(reply))
        out.flush()


def main() -> None:
    # Ctrl-C reaches the whole process group: the parent drains its streams, then closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Only protocol frames may reach the parent: anything else that writes to fd 1 goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
