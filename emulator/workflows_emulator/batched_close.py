"""`BatchedCloser`: closes idle SQLite connections on a background thread, a batch at a time.

Closing the last connection to a WAL database checkpoints it and deletes its WAL. With
``synchronous=NORMAL`` that checkpoint syncs the WAL, copies its frames into the database
and syncs the database: two ``fsync`` per file. On this project's VMs each costs some
200 µs, and the journal commits they force slow the event loop's own file work too (an
instance created and finished every 1.5 ms paid about a quarter of its time for them).

A batch keeps the same guarantee with two syncs of the whole file system instead:

1. sync the file system: every batched WAL's frames are on disk;
2. checkpoint each database without syncing (``synchronous=OFF``): the frames are copied
   in, and the WAL stays (a passive checkpoint never empties it);
3. sync the file system: the copied pages are on disk;
4. close each connection (``synchronous=NORMAL`` again): a WAL fully copied needs no
   copying and no sync, and is deleted. One not fully copied (a reader held it) is copied
   and synced as usual before SQLite deletes it.

So a WAL is never deleted before its frames are in the database on disk, as with a plain
close. A killed process loses nothing either way (the WAL is replayed on the next open).
Where the file system cannot be synced as a whole (``syncfs`` is Linux's), and for a batch
of one, connections are closed one by one, as SQLite does.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

GATHER_S = 0.02
"""How long a batch waits for more closes after its first (connections hold their
descriptors meanwhile: the budget counts them, and a wait for closes cuts it short)."""
MAX_BATCH = 32
"""A batch this large closes at once (so the connections waiting to close stay few, and the
budget of open files seldom has to wait for them)."""


def _find_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs(fd)`` (Linux), or None where there is none."""
    if not hasattr(os, "sched_getaffinity"):  # not Linux: no syncfs
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int
    return syncfs


_SYNCFS = _find_syncfs()


def sync_file_systems(paths: list[Path]) -> bool:
    """Sync every file system holding one of ``paths`` (missing paths are skipped); False
    if one could not be synced, or none of ``paths`` exists (the caller then syncs file by
    file, as SQLite does)."""
    if _SYNCFS is None:
        return False
    devices: set[int] = set()
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # removed meanwhile: nothing of it to keep
        try:
            device = os.fstat(fd).st_dev
            if device not in devices:
                devices.add(device)
                if _SYNCFS(fd) != 0:
                    return False
        finally:
            os.close(fd)
    return bool(devices)


def _checkpoint_unsynced(conn: sqlite3.Connection) -> None:
    """Copy ``conn``'s WAL into its database without syncing (step 2 above)."""
    with contextlib.suppress(sqlite3.Error):  # closed or broken: `close` says no more
        conn.execute("PRAGMA synchronous=OFF")
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.execute("PRAGMA synchronous=NORMAL")


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):  # removed meanwhile: nothing of it to keep
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def close_batch(batch: list[tuple[sqlite3.Connection, Path]]) -> None:
    """Close every connection of ``batch`` (``(connection, its file)``), syncing the file
    systems twice in all rather than each file twice, where that is possible."""
    paths = [path for _, path in batch]
    if len(batch) > 1 and sync_file_systems(paths):
        for conn, _ in batch:
            _checkpoint_unsynced(conn)
        if not sync_file_systems(paths):
            for path in paths:  # the copied pages must be on disk before a WAL goes
                _fsync(path)
    for conn, _ in batch:
        conn.close()


class BatchedCloser:
    """Closes connections on one background thread, gathering those handed over within
    `GATHER_S` of each other, up to `MAX_BATCH`, into one `close_batch`."""

    def __init__(self, gather_s: float = GATHER_S, max_batch: int = MAX_BATCH) -> None:
        self._gather_s = gather_s
        self._max_batch = max(1, max_batch)
        self._lock = threading.Condition(threading.Lock())
        self._pending: list[tuple[sqlite3.Connection, Path]] = []
        self._scheduled: Future[None] | None = None
        self._running: set[Future[None]] = set()
        self._hurried = 0
        """Callers of `wait_closed` waiting now: a batch then closes without gathering."""
        self._executor: ThreadPoolExecutor | None = None
        self.unclosed = 0
        """Connections handed over and not closed yet (they still hold descriptors)."""
        self._paths: dict[Path, int] = {}
        """Files with a connection handed over and not closed yet, and how many."""
        self.batches = 0
        """How many batches were closed (for tests)."""

    def close_later(self, conn: sqlite3.Connection, path: Path) -> None:
        """Close ``conn`` (a connection to ``path``, in no transaction) in the background."""
        with self._lock:
            self._pending.append((conn, path))
            self.unclosed += 1
            self._paths[path] = self._paths.get(path, 0) + 1
            if self._scheduled is not None:
                if len(self._pending) >= self._max_batch:
                    self._lock.notify()  # full: the gathering batch closes now
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    1, thread_name_prefix="workflows-emulator-close")
            done = self._scheduled = self._executor.submit(self._run)
            self._running.add(done)
        done.add_done_callback(self._ended)

    def _ended(self, done: Future[None]) -> None:
        with self._lock:
            self._running.discard(done)

    def _run(self) -> None:
        with self._lock:
            deadline = time.monotonic() + self._gather_s
            while not self._hurried and len(self._pending) < self._max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            batch, self._pending = self._pending, []
            self._scheduled = None
        try:
            close_batch(batch)
        finally:
            with self._lock:
                self.unclosed -= len(batch)
                for _, path in batch:
                    left = self._paths[path] - 1
                    if left:
                        self._paths[path] = left
                    else:
                        del self._paths[path]
                self.batches += 1

    def wait_closing(self, path: Path) -> None:
        """If a connection to ``path`` is still to be closed, close it (and the others) now:
        no second connection may write to a file while a batch checkpoints it unsynced."""
        with self._lock:
            pending = path in self._paths
        if pending:
            self.wait_closed()

    def wait_closed(self) -> None:
        """Close everything handed over now, and wait until it is closed."""
        with self._lock:
            self._hurried += 1
            self._lock.notify()
        try:
            while True:
                with self._lock:
                    running = list(self._running)
                if not running:
                    return
                for done in running:
                    done.result()
        finally:
            with self._lock:
                self._hurried -= 1

    def finish(self) -> None:
        """`wait_closed`, then stop the thread (idempotent; a later close starts it again)."""
        self.wait_closed()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
