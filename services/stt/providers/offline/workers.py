"""Decoder worker processes and the pool of decoders they hold, seen from the service's event loop.

One worker process per core (worker.py beside it) decodes in parallel with the others, since
pocketsphinx holds the GIL. The pool hands out a decoder for one utterance (a Lease: worker +
decoder id), preferring the worker with the fewest open utterances; the utterance's state lives
in that worker until its end. Decoders are created on demand up to `max_decoders` in total and
reused. Calls go over the worker's stdin/stdout as asyncio streams (drain() is the back-pressure).
A worker that dies fails the calls in flight (WorkerGone) and is restarted for later utterances.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.stt.providers.offline.worker import HEADER, frame

log = logging.getLogger("stt.workers")

ROOT = Path(__file__).resolve().parents[4]  # the checkout holding services/


class WorkerGone(Exception):
    """The worker process exited; its utterances are lost."""


class WorkerError(Exception):
    """A request failed inside a worker (the worker itself keeps serving)."""


class WorkerProcess:
    def __init__(self, index: int):
        self.index = index
        self.idle: list[int] = []      # decoder ids loaded and free
        self.busy: set[int] = set()    # decoder ids lent out
        self.loading = 0               # decoders being created
        self.alive = False
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self._write_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.stt.providers.offline.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env, cwd=str(ROOT), limit=1 << 22)
        self.alive = True
        self._reader = asyncio.create_task(self._read(), name=f"stt-worker-{self.index}-reader")

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
                req_id, ok, result = pickle.loads(await stdout.readexactly(size))
                fut = self._calls.pop(req_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(result) if ok else fut.set_exception(WorkerError(result))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._died()

    def _died(self) -> None:
        if self.alive:
            log.warning("stt decoder worker exited", extra={"worker": self.index, "pid": self.pid})
        self.alive = False
        for fut in self._calls.values():
            if not fut.done():
                fut.set_exception(WorkerGone(f"decoder worker {self.index} exited"))
        self._calls.clear()

    async def call(self, op: str, did: int, *args: Any) -> Any:
        if not self.alive or self._proc is None or self._proc.stdin is None:
            raise WorkerGone(f"decoder worker {self.index} is not running")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[req_id] = fut
        try:
            async with self._write_lock:
                self._proc.stdin.write(frame((req_id, op, did, *args)))
                await self._proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._calls.pop(req_id, None)
            raise WorkerGone(f"decoder worker {self.index} exited") from exc
        try:
            return await fut
        finally:
            self._calls.pop(req_id, None)

    async def close(self, timeout_s: float = 2.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()  # EOF: the worker finishes what it has and exits
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                    proc.kill()
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        self.alive = False


@dataclass(eq=False)
class Lease:
    """One decoder in one worker, lent to one utterance."""
    worker: WorkerProcess
    did: int

    async def call(self, op: str, *args: Any) -> Any:
        return await self.worker.call(op, self.did, *args)


class DecoderPool:
    """At most `max_decoders` decoders over `workers` processes, created on demand and reused."""

    def __init__(self, max_decoders: int, workers: int):
        self.max_decoders = max_decoders
        self.workers = [WorkerProcess(i) for i in range(workers)]
        self._slots = asyncio.Semaphore(max_decoders)
        self._start_lock = asyncio.Lock()
        self._dids = itertools.count()
        self._drops: set[asyncio.Task[Any]] = set()

    @property
    def created(self) -> int:
        return sum(len(w.idle) + len(w.busy) + w.loading for w in self.workers if w.alive)

    @property
    def in_use(self) -> int:
        return sum(len(w.busy) for w in self.workers if w.alive)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.alive and w.pid]

    async def start(self) -> None:
        """Start (or restart) worker processes that are not running."""
        async with self._start_lock:
            for i, w in enumerate(self.workers):
                if not w.alive:
                    if w.pid is not None:  # a dead one: reap it, its decoders are gone
                        await w.close(0)
                        self.workers[i] = w = WorkerProcess(i)
                    await w.start()

    async def warm(self, n: int) -> None:
        """Start the workers and load up to n decoders, spread over them, in parallel."""
        await self.start()
        n = min(n, self.max_decoders) - self.created
        targets = [self.workers[i % len(self.workers)] for i in range(max(0, n))]
        await asyncio.gather(*[self._new(w) for w in targets])

    async def _new(self, w: WorkerProcess) -> int:
        did = next(self._dids)
        w.loading += 1
        try:
            await w.call("new", did)
        finally:
            w.loading -= 1
        w.idle.append(did)
        return did

    async def acquire(self) -> Lease:
        """A decoder for one utterance; waits (back-pressure) when all are busy."""
        await self._slots.acquire()
        try:
            if not all(w.alive for w in self.workers):
                await self.start()
            live = [w for w in self.workers if w.alive]
            w = min(live, key=lambda w: (len(w.busy) + w.loading, not w.idle))
            if not w.idle and self.created >= self.max_decoders:
                w = next(w for w in live if w.idle)  # a free slot with every decoder loaded: one is idle
            if not w.idle:
                await self._new(w)
            did = w.idle.pop()
            w.busy.add(did)
            return Lease(w, did)
        except BaseException:
            self._slots.release()
            raise

    def release(self, lease: Lease) -> None:
        if lease.did in lease.worker.busy:
            lease.worker.busy.discard(lease.did)
            lease.worker.idle.append(lease.did)
        self._slots.release()

    def discard(self, lease: Lease) -> None:
        """Give back the slot of a decoder in an unknown state, without reusing it."""
        lease.worker.busy.discard(lease.did)
        if lease.worker.alive:  # best effort: a dead worker has dropped it anyway
            task = asyncio.ensure_future(lease.call("drop"))
            self._drops.add(task)
            task.add_done_callback(self._drops.discard)
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._slots.release()

    async def close(self) -> None:
        for task in list(self._drops):
            task.cancel()
        await asyncio.gather(*[w.close() for w in self.workers])
