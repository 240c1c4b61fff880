"""`BatchedCloser`: connections closed together sync the file system twice, never a WAL
deleted before its frames are in the database file."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workflows_emulator import batched_close
from workflows_emulator.batched_close import BatchedCloser
from workflows_emulator.durable_object import DurableObjectNamespace, DurableObjectStorage, OpenFiles

pytestmark = pytest.mark.skipif(batched_close._SYNCFS is None,
                                reason="syncfs is Linux's: elsewhere files are closed one by one")


def _writer(path: Path, rows: int) -> sqlite3.Connection:
    """A WAL database with ``rows`` rows committed and left in its WAL (not checkpointed)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (v TEXT)")
    for n in range(rows):
        conn.execute("INSERT INTO t VALUES (?)", (f"row {n}",))
    return conn


def _rows_in_file_alone(path: Path, scratch: Path) -> int:
    """How many rows the database file holds without its WAL (a copy, opened read-only)."""
    copy = scratch / f"copy-{time.monotonic_ns()}.sqlite"
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
    except sqlite3.OperationalError:  # the table is still only in the WAL
        return 0
    finally:
        conn.close()


def test_a_batch_copies_every_wal_in_and_syncs_before_any_wal_is_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    paths = [tmp_path / f"db{n}.sqlite" for n in range(4)]
    conns = [_writer(path, rows=5) for path in paths]
    assert all(_rows_in_file_alone(path, scratch) == 0 for path in paths)  # all in the WALs
    seen: list[tuple[list[int], list[bool]]] = []
    real = batched_close._SYNCFS
    assert real is not None

    def syncfs(fd: int) -> int:
        seen.append(([_rows_in_file_alone(path, scratch) for path in paths],
                     [Path(f"{path}-wal").exists() for path in paths]))
        return real(fd)

    monkeypatch.setattr(batched_close, "_SYNCFS", syncfs)
    closer = BatchedCloser(gather_s=5.0)
    for conn, path in zip(conns, paths, strict=True):
        closer.close_later(conn, path)
    assert closer.unclosed == 4
    closer.finish()
    assert closer.batches == 1 and closer.unclosed == 0
    # First sync: the frames are still only in the WALs. Second: copied in, WALs kept.
    assert seen == [([0, 0, 0, 0], [True] * 4), ([5, 5, 5, 5], [True] * 4)]
    for path in paths:  # closed: the WAL is gone and the file alone holds everything
        assert not Path(f"{path}-wal").exists()
        assert _rows_in_file_alone(path, scratch) == 5


def test_a_wal_a_reader_still_uses_is_kept_and_nothing_is_lost(tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    writer = _writer(first, rows=3)
    other = _writer(second, rows=2)
    reader = sqlite3.connect(first, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 3  # holds a snapshot
    writer.execute("INSERT INTO t VALUES ('after the snapshot')")
    closer = BatchedCloser(gather_s=5.0)
    closer.close_later(writer, first)
    closer.close_later(other, second)
    closer.finish()
    assert Path(f"{first}-wal").exists()  # the reader holds it: SQLite did not delete it
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 4
    reader.close()
    again = sqlite3.connect(first)
    assert again.execute("SELECT count(*) FROM t").fetchone()[0] == 4
    again.close()


def test_wait_closed_closes_at_once_without_waiting_to_gather(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    closer = BatchedCloser(gather_s=30.0)
    closer.close_later(_writer(path, rows=1), path)
    started = time.monotonic()
    closer.wait_closed()
    assert time.monotonic() - started < 15.0  # far below the 30 s it would gather for
    assert closer.unclosed == 0 and not Path(f"{path}-wal").exists()
    closer.close_later(_writer(tmp_path / "b.sqlite", rows=1), tmp_path / "b.sqlite")
    closer.finish()  # a close after a wait gathers again, and finish closes it
    assert closer.batches == 2 and closer.unclosed == 0


def test_without_syncfs_each_file_is_closed_as_sqlite_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batched_close, "_SYNCFS", None)
    paths = [tmp_path / f"db{n}.sqlite" for n in range(3)]
    closer = BatchedCloser(gather_s=5.0)
    for path in paths:
        closer.close_later(_writer(path, rows=2), path)
    closer.finish()
    for path in paths:
        assert not Path(f"{path}-wal").exists()
        assert _rows_in_file_alone(path, tmp_path) == 2


def test_a_file_removed_before_its_batch_closes_is_skipped(tmp_path: Path) -> None:
    kept, removed = tmp_path / "kept.sqlite", tmp_path / "removed.sqlite"
    closer = BatchedCloser(gather_s=5.0)
    closer.close_later(_writer(kept, rows=2), kept)
    closer.close_later(_writer(removed, rows=2), removed)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{removed}{suffix}").unlink()
    closer.finish()
    assert closer.unclosed == 0
    assert _rows_in_file_alone(kept, tmp_path) == 2


def test_a_full_batch_closes_without_waiting_to_gather(tmp_path: Path) -> None:
    closer = BatchedCloser(gather_s=60.0, max_batch=3)
    paths = [tmp_path / f"db{n}.sqlite" for n in range(3)]
    for path in paths:
        closer.close_later(_writer(path, rows=1), path)
    deadline = time.monotonic() + 30.0  # far below the 60 s it would otherwise gather for
    while closer.unclosed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closer.unclosed == 0 and closer.batches == 1
    assert not any(Path(f"{path}-wal").exists() for path in paths)
    closer.finish()


def _watch_unsynced_checkpoints(monkeypatch: pytest.MonkeyPatch,
                                writer_open: Callable[[], bool]) -> list[bool]:
    """Record, at each unsynced checkpoint, whether another connection could write the file."""
    seen: list[bool] = []
    real = batched_close._checkpoint_unsynced

    def checkpoint(conn: sqlite3.Connection) -> None:
        seen.append(writer_open())
        real(conn)

    monkeypatch.setattr(batched_close, "_checkpoint_unsynced", checkpoint)
    return seen


def _two_written_and_released(tmp_path: Path) -> tuple[OpenFiles, DurableObjectNamespace,
                                                       DurableObjectStorage]:
    """Objects x and y, each written once and released (a batch of two waits to close)."""
    files = OpenFiles(limit=64)
    ns = DurableObjectNamespace(tmp_path / "objects", files=files)
    x, y = ns.open("x"), ns.open("y")
    x.put("a", 1)
    y.put("b", 1)
    x.release()
    y.release()
    return files, ns, x


def test_a_storage_used_again_waits_for_its_pending_close(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Another connection committing while a batch checkpoints unsynced could restart the WAL
    # before the copied pages are on disk: frames synced by the first sync would be lost.
    files, _ns, x = _two_written_and_released(tmp_path)
    seen = _watch_unsynced_checkpoints(monkeypatch, lambda: isinstance(x._conn, sqlite3.Connection))
    x.put("c", 2)  # reconnects: the released connection must be closed first
    files.finish()
    assert seen and not any(seen)
    assert x.get("a") == 1 and x.get("c") == 2
    x.close()


def test_a_new_storage_on_a_file_waits_for_its_pending_close(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    files, ns, x = _two_written_and_released(tmp_path)
    x.close()  # as a finished engine let go is
    again: list[DurableObjectStorage] = []
    seen = _watch_unsynced_checkpoints(
        monkeypatch, lambda: bool(again) and isinstance(again[0]._conn, sqlite3.Connection))
    again.append(ns.open("x"))
    again[0].put("c", 2)
    files.finish()
    assert seen and not any(seen)
    assert again[0].get("a") == 1 and again[0].get("c") == 2
    again[0].close()
