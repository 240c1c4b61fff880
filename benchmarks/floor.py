"""The floors: what raw SQLite (WAL + ``synchronous=NORMAL``) and the disk cost on this machine now.

Each figure is measured in the same run as the engines, in the same temporary folder, so
ratios to it hold across machines and commits while absolute times do not.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

ROW = "x" * 200  # about the size of a small step record


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def commits_us(directory: Path, steps: int, commits_per_step: int) -> float:
    """µs per step for ``steps`` steps of ``commits_per_step`` one-row transactions each.

    Two commits per step (start, then result) is the floor a durable step engine compares to.
    """
    conn = _open(directory / f"commits-{commits_per_step}-{time.monotonic_ns()}.sqlite")
    conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, v TEXT)")
    start = time.perf_counter()
    for _step in range(steps):
        for _commit in range(commits_per_step):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO log (v) VALUES (?)", (ROW,))
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / steps * 1e6


def new_file_us(directory: Path, files: int) -> float:
    """µs per file to create a SQLite file in WAL mode with one table, commit one row, close it.

    The least an engine that gives each instance its own file pays to create one.
    """
    folder = directory / f"files-{time.monotonic_ns()}"
    folder.mkdir()
    start = time.perf_counter()
    for i in range(files):
        conn = _open(folder / f"{i}.sqlite")
        conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO log (v) VALUES (?)", (ROW,))
        conn.execute("COMMIT")
        conn.close()
    return (time.perf_counter() - start) / files * 1e6


def empty_file_us(directory: Path, files: int) -> float:
    """µs per file to create an empty file (``open(O_CREAT | O_EXCL)``, ``close``) in a new folder.

    What the kernel alone charges for a new file on this disk now: the part of creating an
    instance that no engine keeping one file per instance avoids. On ext4 without a journal
    it grows with the files deleted on the disk in the last minutes (the allocator checks
    each inode freed recently and skips it), so it moves between runs on the same machine.
    """
    folder = directory / f"empty-{time.monotonic_ns()}"
    folder.mkdir()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    start = time.perf_counter()
    for i in range(files):
        os.close(os.open(folder / str(i), flags, 0o644))
    return (time.perf_counter() - start) / files * 1e6


def fsync_us(directory: Path, writes: int) -> float:
    """µs per 4 KiB write + ``fsync``: how busy the disk is (engines that fsync per step pay it)."""
    path = directory / f"fsync-{time.monotonic_ns()}.bin"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    block = b"x" * 4096
    try:
        start = time.perf_counter()
        for _ in range(writes):
            os.write(fd, block)
            os.fsync(fd)
        return (time.perf_counter() - start) / writes * 1e6
    finally:
        os.close(fd)
