"""Group commit: many concurrent requests, one transaction.

Handlers hand a record to ``Ledger.record`` and await it. A single writer thread takes
everything queued, inserts it in one transaction, commits (fsync), then wakes all the
waiters at once; under load one commit carries hundreds of records. The response is
released only after its record is committed, so a ``kill -9`` loses no record of an
answer a client received.

When the database fails (down, disk full): with ``required: true`` the waiters get
``LedgerUnavailable`` (a 503) and new requests are refused until a reconnect works;
with ``required: false`` the batch goes to an append-only spill file (fsync'd) and is
replayed, idempotently, once the database is back.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from hybridgate.core.errors import GatewayError, UpstreamUnavailable
from hybridgate.ledger.record import Record
from hybridgate.ledger.store import Store

log = logging.getLogger("hybridgate.ledger")

_STOP = object()
T = TypeVar("T")


class LedgerUnavailable(UpstreamUnavailable):
    """The ledger cannot commit and records are required (503)."""

    code = "ledger_unavailable"


class Ledger:
    def __init__(self, url: str, *, required: bool, spill_path: Path, max_batch: int = 512,
                 retry_interval: float = 1.0, audit: Any = None) -> None:
        self.store = Store(url)
        self.store.audit = audit  # ledger/audit: a record per row, in the same commit
        self.required = required
        self.spill_path = spill_path
        self.max_batch = max_batch
        self.retry_interval = retry_interval
        self.healthy = False
        self.last_error: str | None = None
        self.commits = 0  # transactions committed (for tests and the benchmark)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._encode = msgspec.json.Encoder().encode

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        await asyncio.get_running_loop().run_in_executor(None, self._connect)
        self._thread.start()

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)
        self.store.close()

    def _connect(self) -> bool:
        try:
            self.store.close()
            self.store.connect()
        except Exception as e:
            self._fail(e)
            return False
        if not self.healthy:
            log.info("ledger connected (%s)", self.store.kind)
        self.healthy = True
        self.last_error = None
        self._replay_spill()
        return True

    def _fail(self, e: Exception) -> None:
        msg = f"{type(e).__name__}: {e}".strip()
        if self.healthy or self.last_error != msg:
            log.error("ledger write failed: %s", msg)
        self.healthy = False
        self.last_error = msg

    # ------------------------------------------------------------------ the hot path

    def check(self) -> None:
        """Refuse work up front while records cannot be kept (required mode only)."""
        if self.required and not self.healthy:
            raise LedgerUnavailable(f"the ledger is unavailable ({self.last_error}); "
                                    "requests are refused rather than served unrecorded")

    async def record(self, rec: Record) -> None:
        """Returns once ``rec`` is committed (or spilled); raises LedgerUnavailable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put((rec, loop, fut))
        await fut

    async def feedback(self, request_id: str, score: float | None,
                       preferred_route: str | None, key_id: str | None = None) -> bool:
        """Attach feedback to a request's row; False when there is no such request
        (with ``key_id``: no such request made with that key)."""
        sql = ("UPDATE requests SET feedback_score = COALESCE(?, feedback_score), "
               "preferred_route = COALESCE(?, preferred_route) WHERE id = ?")
        args: tuple[Any, ...] = (score, preferred_route, request_id)
        if key_id is not None:
            sql, args = sql + " AND key_id = ?", (*args, key_id)
        n = await self.run(lambda store: store.execute(sql, args), "feedback")
        return n > 0

    async def run(self, fn: Callable[[Store], T], what: str) -> T:
        """Run ``fn`` with the database on the writer thread, after the records queued
        before it (so it sees their rows), in its own transaction(s); LedgerUnavailable
        when the database cannot be reached."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, what, loop, fut))
        return await fut

    def record_nowait(self, rec: Record) -> None:
        """For paths that cannot wait (a client that already left): best effort."""
        self._queue.put((rec, None, None))

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.retry_interval)
            except queue.Empty:
                if not self.healthy:
                    self._connect()
                continue
            if first is _STOP:
                return
            if isinstance(first, _Job):
                self._apply(first)
                continue
            batch = [first]
            stop = False
            later: list[_Job] = []
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                if isinstance(item, _Job):
                    later.append(item)  # after this batch: its row may be in the batch
                    continue
                batch.append(item)
            self._commit(batch)  # type: ignore[arg-type]
            for job in later:
                self._apply(job)
            if stop:
                return

    def _apply(self, job: _Job) -> None:
        try:
            if not self.healthy and not self._connect():
                raise RuntimeError(self.last_error or "ledger unavailable")
            value = job.fn(self.store)
            job.loop.call_soon_threadsafe(_settle, job.fut, value, None)
        except GatewayError as e:  # the job's own answer to the client (a 4xx)
            self.store.rollback()
            job.loop.call_soon_threadsafe(_settle, job.fut, None, e)
        except Exception as e:
            try:
                self.store.rollback()
            except Exception:
                pass
            self._fail(e)
            job.loop.call_soon_threadsafe(_settle, job.fut, None, LedgerUnavailable(
                f"{job.what} could not be done in the ledger: {self.last_error}"))

    def _commit(self, batch: list[tuple[Record, asyncio.AbstractEventLoop | None,
                                        asyncio.Future[None] | None]]) -> None:
        rows = [rec.row() for rec, _, _ in batch]
        error: Exception | None = None
        if not self.healthy:
            self._connect()
        if self.healthy:
            try:
                self.store.insert(rows, [rec for rec, _, _ in batch])
                self.commits += 1
            except Exception as e:
                self._fail(e)
                error = e
        else:
            error = RuntimeError(self.last_error or "ledger unavailable")
        if error is not None and not self.required:
            try:
                self._spill([rec for rec, _, _ in batch])
                error = None
            except OSError as e:
                log.error("ledger spill failed: %s", e)
                error = e
        for _, loop, fut in batch:
            if loop is None or fut is None:
                continue
            if error is None:
                loop.call_soon_threadsafe(_settle, fut, None, None)
            else:
                loop.call_soon_threadsafe(_settle, fut, None, LedgerUnavailable(
                    f"the request's record could not be committed: {self.last_error}"))

    # ------------------------------------------------------------------ spill + replay

    def _spill(self, records: list[Record]) -> None:
        """Append to the spill file under an exclusive lock. Several processes (``--workers
        N``, or hosts sharing a directory) append to one path while any of them may be
        replaying it: the lock keeps appends whole, and a writer whose path was renamed
        away by a replayer between open and lock opens the new file instead, so no append
        lands in a file that has already been read."""
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(self._encode(r) + b"\n" for r in records)
        while True:
            fd = os.open(self.spill_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.spill_path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    os.write(fd, data)
                    os.fsync(fd)
                    return
            finally:
                os.close(fd)  # releases the lock

    def _spill_files(self) -> list[Path]:
        """The spill file and any claimed by a replayer that did not finish (it died, or
        the database failed again mid-replay)."""
        path = self.spill_path
        found = sorted(path.parent.glob(path.name + ".replay-*"))
        return [path, *found] if path.exists() else found

    def _replay_spill(self) -> None:
        """Insert every spilled record, then delete its file. A file is first claimed by
        an atomic rename (no writer can open it afterwards), then locked (the writers that
        opened it before the rename finish first), then read whole. Inserts are idempotent
        (by request id), so a claim left behind by a crash is simply replayed again."""
        for path in self._spill_files():
            claimed = path.with_name(f"{self.spill_path.name}.replay-{socket.gethostname()}-"
                                     f"{os.getpid()}-{secrets.token_hex(4)}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:  # another process claimed it first
                continue
            if not self._replay_file(claimed):
                return

    def _replay_file(self, path: Path) -> bool:
        decoder = msgspec.json.Decoder(Record)
        with open(path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # wait for appends in flight
            lines = f.read().splitlines()
        records = []
        for line in lines:
            if line.strip():
                try:
                    records.append(decoder.decode(line))
                except msgspec.DecodeError:  # a torn last line from a crash mid-write
                    log.warning("skipping an unreadable spill line")
        rows = [r.row() for r in records]
        try:
            for i in range(0, len(rows), self.max_batch):
                self.store.insert(rows[i:i + self.max_batch],
                                  records[i:i + self.max_batch])
        except Exception as e:
            self._fail(e)
            return False
        path.unlink(missing_ok=True)  # a second replayer may have claimed it from us
        log.info("replayed %d spilled ledger records", len(rows))
        return True


class _Job:
    """Work for the writer thread: ``fn(store)``, its result settled on ``fut``."""

    __slots__ = ("fn", "what", "loop", "fut")

    def __init__(self, fn: Callable[[Store], Any], what: str,
                 loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.what = what
        self.loop = loop
        self.fut = fut


def _settle(fut: asyncio.Future, value: object, error: Exception | None) -> None:
    """Runs on the waiter's loop: the writer thread must not touch futures directly."""
    if fut.done():
        return
    if error is None:
        fut.set_result(value)
    else:
        fut.set_exception(error)
