"""`InstanceIndex`: the one owner of the state directory's index of instances (``index.sqlite``).

Each instance's own file is the truth about it; the index lists instances by workflow for
``list()`` and for resuming unfinished ones, and is reconciled from the instances' files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .durable_object import DurableObjectStorage
from .records import TERMINAL

SCHEMA_VERSION = 1
"""The layout of ``index.sqlite`` (``PRAGMA user_version``)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    workflow TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, modified REAL NOT NULL, PRIMARY KEY (workflow, id)
);
CREATE INDEX IF NOT EXISTS instances_by_created ON instances (workflow, created);
"""
_TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL))


class InstanceIndex:
    """Which instances exist, per workflow, with their last known status."""

    def __init__(self, state_dir: Path) -> None:
        self._storage = DurableObjectStorage(state_dir / "index.sqlite", _SCHEMA, SCHEMA_VERSION)

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._storage.close()

    def exists(self, workflow: str, instance_id: str) -> bool:
        """Whether ``instance_id`` of ``workflow`` is indexed."""
        return self._storage.sql.exec(
            "SELECT 1 AS x FROM instances WHERE workflow = ? AND id = ?", workflow, instance_id
        ).first() is not None

    def add(self, workflow: str, instance_id: str, status: str, now: float) -> None:
        """Index a newly created instance."""
        self._storage.sql.exec(
            "INSERT INTO instances (workflow, id, status, created, modified) "
            "VALUES (?, ?, ?, ?, ?)", workflow, instance_id, status, now, now)

    def set_status(self, workflow: str, instance_id: str, status: str, now: float) -> None:
        """Record an instance's new status."""
        self._storage.sql.exec(
            "UPDATE instances SET status = ?, modified = ? WHERE workflow = ? AND id = ?",
            status, now, workflow, instance_id)

    def remove(self, workflow: str, instance_id: str) -> None:
        """Forget a deleted instance."""
        self._storage.sql.exec(
            "DELETE FROM instances WHERE workflow = ? AND id = ?", workflow, instance_id)

    def unfinished(self, workflow: str) -> list[str]:
        """Ids of ``workflow``'s instances that are not in a terminal status."""
        rows = self._storage.sql.exec(
            f"SELECT id FROM instances WHERE workflow = ? AND status NOT IN ({_TERMINAL_SQL})",
            workflow)
        return [row["id"] for row in rows]

    def list(self, workflow: str, status: str | None = None) -> list[dict[str, Any]]:
        """``{id, status, created, modified}`` of ``workflow``'s instances, oldest first."""
        query = "SELECT id, status, created, modified FROM instances WHERE workflow = ?"
        args: list[Any] = [workflow]
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        return self._storage.sql.exec(query + " ORDER BY created, id", *args).to_array()
