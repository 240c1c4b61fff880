"""An instance's event log: the one durable record of its steps, which are folded from it.

Every transition is an entry appended inside a transaction (``STEP_START``, ``ATTEMPT_*``,
``ROLLBACK_*``, ...). The same `fold` turns an entry into the in-memory `StepRow` when it is
appended and when the log is read back after a restart, so what the engine sees live and
what it rebuilds after a crash cannot drift apart. Appending to one table keeps each commit
to a page or two.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .durable_object import DurableObjectStorage

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, event TEXT NOT NULL, key TEXT, step TEXT,
    attempt INTEGER, data TEXT
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, payload TEXT NOT NULL, ts REAL NOT NULL
);
"""
_STARTS = frozenset({"STEP_START", "ROLLBACK_STEP_START", "SLEEP_START", "WAIT_START"})
_INTERNAL = ("kind", "name", "count", "seq")
_INSERT = "INSERT INTO log (id, ts, event, key, step, attempt, data) VALUES "
_INSERTS: dict[int, str] = {}


@dataclass
class StepRow:
    """One step (a ``do``, ``sleep``, ``wait`` or ``rollback``), as folded from the log."""

    key: str
    kind: str
    name: str
    count: int
    seq: int
    state: str = "running"
    attempts: int = 0
    attempt_open: int = 0
    config: str | None = None
    output: str | None = None
    error: str | None = None
    has_rollback: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    wake_at: float | None = None
    label: str = ""
    """``"<name>-<count>"``, as Workflows shows steps (a handler shows its step's)."""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name if self.kind == "rollback" else f"{self.name}-{self.count}"


def fold(rows: dict[str, StepRow], event: str, key: str | None, ts: float,
         attempt: int | None, data: dict[str, Any] | None,
         texts: dict[str, str] | None = None) -> StepRow | None:
    """Apply one log entry to ``rows``; return the row it touched.

    ``texts`` may carry the JSON of ``config`` / ``output`` already encoded.
    """
    data = data or {}
    if event == "WORKFLOW_RESUMED":
        shift = data.get("shiftMs", 0)
        for row in rows.values():
            if row.state == "running" and row.wake_at is not None:
                row.wake_at += shift
        return None
    if key is None:
        return None
    found = rows.get(key)
    if event in _STARTS or found is None:
        if "kind" not in data:
            return found
        row = StepRow(
            key=key, kind=data["kind"], name=data["name"], count=data["count"], seq=data["seq"],
            config=(texts or {}).get("config") or (
                json.dumps(data["config"]) if data.get("config") is not None else None),
            has_rollback=int(bool(data.get("hasRollback"))), started_at=ts,
            wake_at=data.get("until"),
        )
        rows[key] = row
        if event in _STARTS:
            return row
    else:
        row = found
    if event.endswith("ATTEMPT_START"):
        row.attempts, row.attempt_open, row.wake_at = attempt or row.attempts + 1, 1, None
    elif event.endswith("ATTEMPT_SUCCESS"):
        row.attempt_open = 0
    elif event.endswith("ATTEMPT_FAILURE"):
        row.attempt_open = 0
        if "retryDelayMs" in data:
            row.wake_at = ts + data["retryDelayMs"]
    elif event.endswith("STEP_SUCCESS") or event in ("SLEEP_COMPLETE", "WAIT_COMPLETE"):
        row.state, row.ended_at, row.wake_at = "success", ts, None
        if "output" in data:
            row.output = (texts or {}).get("output") or json.dumps(data["output"])
    elif event.endswith("STEP_FAILURE") or event == "WAIT_TIMEOUT":
        row.state, row.ended_at, row.wake_at = "failure", ts, None
        row.attempt_open = 0
        row.error = json.dumps(data.get("error"))
    return row


class _LogTransaction:
    """``with log.transaction():`` (a class: this sits on every step's hot path)."""

    __slots__ = ("_log", "_outer", "_storage_tx")

    def __init__(self, log: InstanceLog) -> None:
        self._log = log
        self._storage_tx = log.storage.transaction()
        self._outer = False

    def __enter__(self) -> None:
        self._storage_tx.__enter__()
        log = self._log
        self._outer = not log._in_tx
        log._in_tx = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        log = self._log
        failed = exc_type is not None
        try:
            if self._outer and not failed and log._pending:
                log._flush()
            self._storage_tx.__exit__(exc_type, None, None)
        except BaseException:
            failed = True
            if log.storage._depth:  # the flush failed: the commit never ran
                self._storage_tx.__exit__(BaseException, None, None)
            raise
        finally:
            if self._outer:
                log._in_tx = False
                log._pending = []
                if failed:
                    log.load()  # what was folded in memory did not happen


class InstanceLog:
    """The log of one instance, in its Durable-Object stand-in.

    Args:
        storage: the instance's storage.
        on_append: told of every entry appended (for live subscribers).
    """

    def __init__(self, storage: DurableObjectStorage,
                 on_append: Callable[[int, str, str | None, int | None, dict[str, Any] | None,
                                      float], None]) -> None:
        self.storage = storage
        # Usually created with the file (DurableObjectNamespace.open(name, SCHEMA)).
        if storage.sql.exec("SELECT 1 AS x FROM sqlite_master WHERE name = 'log'").first() is None:
            storage.sql.executescript(SCHEMA)
        self._on_append = on_append
        self._pending: list[tuple[Any, ...]] = []
        self._in_tx = False
        last = storage.sql.exec("SELECT max(id) AS m FROM log").one()["m"]
        self._next_id = (last or 0) + 1
        self.rows: dict[str, StepRow] = {}

    def transaction(self) -> _LogTransaction:
        """Entries appended inside are committed together (with any other write) at the end."""
        return _LogTransaction(self)

    def _flush(self) -> None:
        # One multi-row INSERT: far cheaper than executemany for the two to four entries
        # a transition writes.
        pending = self._pending
        sql = _INSERTS.get(len(pending))
        if sql is None:
            sql = _INSERT + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(pending))
            if len(_INSERTS) < 16:
                _INSERTS[len(pending)] = sql
        self.storage.sql.exec(sql, *(v for entry in pending for v in entry))

    def append(self, event: str, ts: float, row: StepRow | None = None, *,
               attempt: int | None = None, data: dict[str, Any] | None = None,
               key: str | None = None, label: str | None = None,
               texts: dict[str, str] | None = None, text: str | None = None) -> StepRow | None:
        """Append one entry (inside `transaction`) and fold it into the rows.

        ``text`` may give the JSON of ``data`` and ``texts`` the JSON of its ``config`` /
        ``output`` already encoded (they spare encoding the same values again).
        """
        assert self._in_tx, "log entries are appended inside a transaction"
        if row is not None:
            key, label = row.key, row.label
        entry_id = self._next_id
        self._next_id += 1
        if text is None and data is not None:
            text = json.dumps(data)
        self._pending.append((entry_id, ts, event, key, label, attempt, text))
        touched = fold(self.rows, event, key, ts, attempt, data, texts)
        self._on_append(entry_id, event, label, attempt, data, ts)
        return touched

    def load(self) -> dict[str, StepRow]:
        """Rebuild every row from the persisted log."""
        rows: dict[str, StepRow] = {}
        cur = self.storage.sql.exec(
            "SELECT ts, event, key, attempt, data FROM log ORDER BY id")
        for ts, event, key, attempt, data in cur.raw():
            fold(rows, event, key, ts, attempt, json.loads(data) if data else None)
        self.rows = rows
        return rows

    def forget(self, keys: set[str] | None = None) -> None:
        """Erase the entries of ``keys`` (all entries if ``None``) and any buffered events.

        Call inside a transaction, then `load` to rebuild the rows.
        """
        if keys is None:
            self.storage.sql.exec("DELETE FROM log")
        else:
            for key in keys:
                self.storage.sql.exec("DELETE FROM log WHERE key = ?", key)
        self.storage.sql.exec("DELETE FROM inbox")  # buffered events go, as on Cloudflare

    def entries(self, after: int = 0) -> list[dict[str, Any]]:
        """The log as dicts, oldest first (internal bookkeeping fields left out)."""
        rows = self.storage.sql.exec(
            "SELECT id, ts, event, step, attempt, data FROM log WHERE id > ? ORDER BY id", after)
        return [
            {"id": r["id"], "timestamp": r["ts"], "event": r["event"], "step": r["step"],
             "attempt": r["attempt"], "data": public_data(json.loads(r["data"]) if r["data"] else None)}
            for r in rows
        ]


def public_data(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """``data`` without the engine's own bookkeeping fields."""
    if data is None or not any(k in data for k in _INTERNAL):
        return data
    return {k: v for k, v in data.items() if k not in _INTERNAL} or None
