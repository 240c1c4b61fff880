"""`InstanceIndex`: the one owner of the state directory's index of instances (``index.sqlite``).

Each instance's own file is the truth about it; the index lists instances by workflow for
``list()`` and for resuming unfinished ones. It is a cache of the instance files: when it is
missing, damaged or of another version it is set aside and rebuilt from them, and every
open reconciles it with the files on disk (instance files it lacks are added, entries whose
file is gone are dropped). An instance file that cannot be read is listed with status
``unknown`` and the reason, and never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .durable_object import DAMAGED_FILE, EMPTY_FILE, DurableObjectStorage, version_mismatch
from .errors import DamagedStateError, EmulatorError, StorageError
from .records import TERMINAL, InstanceMeta, InstanceStatus

SCHEMA_VERSION = 2
"""The layout of ``index.sqlite`` (``PRAGMA user_version``)."""

INDEX_NAME = "index.sqlite"
STATUS_DELAY_S = 0.05
"""How long a status change may wait to be written to the index, with the others made
meanwhile, in one commit."""
QUARANTINE = "quarantine"
"""The folder (in the state directory) where damaged files are set aside."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    workflow TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, modified REAL NOT NULL, problem TEXT, PRIMARY KEY (workflow, id)
);
CREATE INDEX IF NOT EXISTS instances_by_created ON instances (workflow, created);
"""
_TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL))
_SUFFIXES = ("", "-wal", "-shm")


def instance_files(instances_root: Path) -> Iterator[tuple[str, str, Path]]:
    """``(workflow, id, path)`` of every instance file under ``instances_root``."""
    try:
        workflows = sorted(os.scandir(instances_root), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for wf in workflows:
        if not wf.is_dir():
            continue
        for entry in sorted(os.scandir(wf.path), key=lambda e: e.name):
            if entry.name.endswith(".sqlite") and entry.is_file():
                yield wf.name, entry.name[: -len(".sqlite")], Path(entry.path)


_MAGIC = b"SQLite format 3\x00"


def header_problem(path: Path, version: int) -> str | None:
    """Why ``path`` is not a usable state file of ``version``, judged from its 100-byte
    SQLite header alone (cheap enough to check every file on open), or ``None``."""
    try:
        with path.open("rb") as f:
            head = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        return f"the file cannot be read ({exc.strerror})"
    if not head:
        return EMPTY_FILE
    if len(head) < 100 or not head.startswith(_MAGIC):
        return DAMAGED_FILE
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    in_step = head[24:28] == head[92:96]  # the page count is valid for this version of the file
    if in_step and size < pages * page_size and not Path(f"{path}-wal").exists():
        return DAMAGED_FILE + f" (truncated: {size} of {pages * page_size} bytes)"
    found = int.from_bytes(head[60:64], "big", signed=True)
    return None if found == version else version_mismatch(path, found, version)


def read_meta(path: Path) -> InstanceMeta | None:
    """The metadata of the instance file ``path``, read without writing anything.

    Raises:
        StorageError: the file cannot be read (`DamagedStateError` if it is not a state file).
    """
    from .instance_store import SCHEMA_VERSION as INSTANCE_VERSION

    storage = DurableObjectStorage(path, "", INSTANCE_VERSION, read_only=True)
    try:
        data = storage.get("meta")
    finally:
        storage.close()
    return None if data is None else InstanceMeta.from_json(data)


def problem_of(exc: EmulatorError) -> str:
    """What a file's read failure says to people: a storage fault's cause, or the error."""
    return exc.cause if isinstance(exc, StorageError) else str(exc)


def listed_row(instance_id: str, status: str, created: float, modified: float,
               problem: str | None) -> dict[str, Any]:
    """One instance as ``list()`` shows it: ``problem`` only for a file that cannot be read."""
    row: dict[str, Any] = {"id": instance_id, "status": str(status), "created": created,
                           "modified": modified}
    if problem is not None:
        row["problem"] = problem
    return row


def file_row(path: Path) -> tuple[str, float, float, str | None] | None:
    """``(status, created, modified, problem)`` of an instance file, read without writing;
    ``None`` for a create cut off before it wrote anything (the next create erases it)."""
    modified = path.stat().st_mtime * 1000
    try:
        meta = read_meta(path)
    except EmulatorError as exc:  # damaged, unreadable, or of another schema version
        return str(InstanceStatus.UNKNOWN), modified, modified, problem_of(exc)
    if meta is None:
        return None
    return str(meta.status), meta.created, modified, None


def set_aside(state_dir: Path, path: Path, label: str) -> Path:
    """Move ``path`` (with its WAL files) into the quarantine folder; return the new path."""
    folder = state_dir / QUARANTINE / label
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = folder / f"{path.stem}.{stamp}{path.suffix}"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{path.stem}.{stamp}-{n}{path.suffix}"
    for suffix in _SUFFIXES:
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{target}{suffix}")
    return target


class InstanceIndex:
    """Which instances exist, per workflow, with their last known status.

    Args:
        state_dir: the state directory (``index.sqlite`` and ``instances/`` in it).
    """

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self.path = state_dir / INDEX_NAME
        self._pending: dict[tuple[str, str], tuple[str, float]] = {}
        """Statuses not written yet (coalesced, or because a write failed)."""
        self._added: dict[tuple[str, str], float] = {}
        """Instances created and not indexed yet: when each was created (its status pending)."""
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        try:
            self._storage = DurableObjectStorage(self.path, _SCHEMA, SCHEMA_VERSION)
        except StorageError as exc:
            if not isinstance(exc, DamagedStateError):
                raise  # the disk, not the file: nothing to rebuild
            self._storage = self._replace_damaged()
        except EmulatorError:  # another schema version: the index is only a cache
            self._storage = self._replace_damaged()
        self.reconcile()

    def _replace_damaged(self) -> DurableObjectStorage:
        set_aside(self._state_dir, self.path, "index")
        return DurableObjectStorage(self.path, _SCHEMA, SCHEMA_VERSION)

    def close(self) -> None:
        """Close the file (idempotent)."""
        self.flush()
        self._storage.close()

    # -- reconciling with the instance files ----------------------------------------------

    def reconcile(self) -> None:
        """Add instance files the index lacks, drop entries whose file is gone, and note files
        whose header shows they cannot be read (or can again)."""
        from .instance_store import SCHEMA_VERSION as INSTANCE_VERSION

        on_disk = {(wf, iid): path for wf, iid, path in instance_files(self._state_dir / "instances")}
        indexed = {(r[0], r[1]): r[2] for r in self._storage.sql.exec(
            "SELECT workflow, id, problem FROM instances").raw()}
        changes: list[tuple[str, str, Path | None, str | None]] = [
            (wf, iid, None, None) for wf, iid in indexed.keys() - on_disk.keys()]
        for key, path in on_disk.items():
            problem = header_problem(path, INSTANCE_VERSION)
            if key not in indexed or (problem or None) != indexed[key]:
                changes.append((*key, path, problem))
        if not changes:
            return
        with self._storage.transaction():
            for wf, iid, file, problem in changes:
                if file is None:
                    self._storage.sql.exec(
                        "DELETE FROM instances WHERE workflow = ? AND id = ?", wf, iid)
                elif problem is not None:
                    modified = file.stat().st_mtime * 1000
                    self._insert(wf, iid, InstanceStatus.UNKNOWN, modified, modified, problem)
                else:
                    self._add_from_file(wf, iid, file)

    def _add_from_file(self, workflow: str, instance_id: str, path: Path) -> None:
        row = file_row(path)
        if row is not None:
            self._insert(workflow, instance_id, *row)

    def _insert(self, workflow: str, instance_id: str, status: str, created: float,
                modified: float, problem: str | None) -> None:
        self._storage.sql.exec(
            "INSERT OR REPLACE INTO instances (workflow, id, status, created, modified, problem) "
            "VALUES (?, ?, ?, ?, ?, ?)", workflow, instance_id, str(status), created, modified,
            problem)

    # -- the cache ------------------------------------------------------------------------

    def exists(self, workflow: str, instance_id: str) -> bool:
        """Whether ``instance_id`` of ``workflow`` is indexed (or about to be)."""
        return (workflow, instance_id) in self._added or bool(self._storage.sql.exec(
            "SELECT 1 FROM instances WHERE workflow = ? AND id = ?", workflow, instance_id
        ).raw())

    def add(self, workflow: str, instance_id: str, status: str, now: float) -> None:
        """Index a newly created instance (once its creation is committed); written with
        the statuses, within `STATUS_DELAY_S` (an open reconciles what a crash left out)."""
        self._added[(workflow, instance_id)] = now
        self.set_status(workflow, instance_id, status, now)

    def set_status(self, workflow: str, instance_id: str, status: str, now: float) -> None:
        """Record an instance's new status; written with others within `STATUS_DELAY_S`.

        The index may lag the instance files (never lead them): after a crash, resuming
        reads each unfinished instance's own file and corrects its entry. Reads made here
        see pending statuses at once; other processes within `STATUS_DELAY_S`.
        """
        self._pending[(workflow, instance_id)] = (str(status), now)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_timer is None or self._flush_loop is not loop:  # none, or a dead loop's
            self._flush_loop = loop
            self._flush_timer = loop.call_later(STATUS_DELAY_S, self.flush)

    def flush(self) -> None:
        """Write the pending statuses now (kept for later if the index cannot be written)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        try:
            self._flush_pending()
        except StorageError:
            pass  # the instance's own file holds the status; the index catches up later

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        added = self._added
        with self._storage.transaction():
            for (workflow, instance_id), (status, now) in self._pending.items():
                created = added.get((workflow, instance_id))
                if created is not None:
                    self._insert(workflow, instance_id, status, created, now, None)
                else:
                    self._storage.sql.exec(
                        "UPDATE instances SET status = ?, modified = ?, problem = NULL "
                        "WHERE workflow = ? AND id = ?", status, now, workflow, instance_id)
        self._pending.clear()
        added.clear()

    def mark_damaged(self, workflow: str, instance_id: str, problem: str) -> None:
        """Record that the instance's file cannot be read (listed as ``unknown``)."""
        self.flush()  # an instance not indexed yet is first
        with contextlib.suppress(StorageError):
            self._storage.sql.exec(
                "UPDATE instances SET status = ?, problem = ? WHERE workflow = ? AND id = ?",
                str(InstanceStatus.UNKNOWN), problem, workflow, instance_id)

    def remove(self, workflow: str, instance_id: str) -> None:
        """Forget a deleted instance."""
        self._pending.pop((workflow, instance_id), None)
        self._added.pop((workflow, instance_id), None)
        self._storage.sql.exec(
            "DELETE FROM instances WHERE workflow = ? AND id = ?", workflow, instance_id)

    def unfinished(self, workflow: str) -> list[str]:
        """Ids of ``workflow``'s readable instances that are not in a terminal status."""
        self.flush()
        rows = self._storage.sql.exec(
            f"SELECT id FROM instances WHERE workflow = ? AND problem IS NULL "
            f"AND status NOT IN ({_TERMINAL_SQL})", workflow).raw()
        return [row[0] for row in rows]

    def list(self, workflow: str, status: str | None = None) -> list[dict[str, Any]]:
        """``{id, status, created, modified}`` of ``workflow``'s instances, oldest first.

        An instance whose file cannot be read is listed with status ``unknown`` and a
        ``problem`` saying why.
        """
        self.flush()  # a status filter must see the pending statuses
        query = "SELECT id, status, created, modified, problem FROM instances WHERE workflow = ?"
        args: list[Any] = [workflow]
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        rows = self._storage.sql.exec(query + " ORDER BY created, id", *args).raw()
        pending = self._pending
        out: list[dict[str, Any]] = []
        for iid, st, created, modified, problem in rows:
            st, modified = pending.get((workflow, iid), (st, modified))
            out.append(listed_row(iid, st, created, modified, problem))
        if self._added:  # the index could not be written: instances it does not hold yet
            for (wf, iid), created in self._added.items():
                st, modified = pending[(wf, iid)]
                if wf == workflow and (status is None or st == status):
                    out.append(listed_row(iid, st, created, modified, None))
            out.sort(key=lambda row: (row["created"], row["id"]))
        return out
