"""`InstanceStore`: the one owner of an instance's tables (log, event inbox, metadata, alarm).

Nothing else reads or writes an instance's SQLite file. Every transition is a log entry
appended inside `transaction` and folded into `rows` at once (`log_fold.fold`); values are
decoded in memory and JSON only here, at the storage boundary.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from itertools import chain
from typing import Any

from . import output_gate
from .durable_object import DurableObjectNamespace, DurableObjectStorage
from .errors import StorageError
from .log_fold import StepRow, fold, public_data
from .records import InstanceMeta, LogEvent
from .values import dumps, loads

SCHEMA_VERSION = 1
"""The layout of an instance file (``PRAGMA user_version``); bump on any change to it."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, event TEXT NOT NULL, key TEXT, step TEXT,
    attempt INTEGER, data TEXT
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, payload TEXT NOT NULL, ts REAL NOT NULL
);
"""
_INSERT = "INSERT INTO log (id, ts, event, key, step, attempt, data) VALUES "
_INSERTS: dict[int, str] = {}
_FLUSH_CHUNK = 256

FaultListener = Callable[[StorageError], None]
"""Told when a read or write of the file fails (the store refuses writes from then on)."""
AppendListener = Callable[[int, str, str | None, int | None, dict[str, Any] | None, float], None]
"""Told of every entry appended: ``(id, event, step label, attempt, data, timestamp)``."""


def _ignore(*_: Any) -> None:
    pass


class _StoreTransaction:
    """``with store.transaction():`` (a class: this sits on every step's hot path).

    Entries that `InstanceStore.deferred` left uncommitted are committed with this
    transaction's; if it fails, they are committed on their own before it is undone.
    """

    __slots__ = ("_carried", "_outer", "_storage_tx", "_store")

    def __init__(self, store: InstanceStore) -> None:
        self._store = store
        self._storage_tx = store._storage.transaction()
        self._outer = False
        self._carried = (0, 0)

    def __enter__(self) -> None:
        store = self._store
        if store.fault is not None:
            raise store.fault  # nothing more is written until the fault is cleared
        if not store._in_tx:
            output_gate.open_gate(but=store)  # other instances' results go first
        try:
            self._storage_tx.__enter__()
        except StorageError as exc:
            store.failed(exc)
            raise
        self._outer = not store._in_tx
        if self._outer and store._deferred:
            self._carried = (len(store._pending), len(store._committed))
        store._in_tx = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        store = self._store
        failed = exc_type is not None
        try:
            if self._outer and not failed:
                # A held write superseded by this transaction's own is dropped only once the
                # commit succeeds (below): if it fails, the held one is still owed.
                if store._held_meta is not None and not store._meta_put:
                    store._storage.put("meta", store._held_meta)
                if store._pending:
                    store._flush()
            self._storage_tx.__exit__(exc_type, None, None)
        except BaseException as exc:
            failed = True
            if store._storage.in_transaction:  # the flush failed: the commit never ran
                self._storage_tx.__exit__(BaseException, None, None)
            if isinstance(exc, StorageError):
                store.failed(exc)
            raise
        finally:
            if self._outer:
                store._in_tx = False
                store._meta_put = False
                if failed:
                    self._undo()
                else:
                    store._held_meta = None
                    store._deferred = False
                    store.commit_wanted = False
                    store._pending = []
                    store._early = []
                    committed, store._committed = store._committed, []
                    for callback in committed:
                        callback()

    def _undo(self) -> None:
        """After a failure: keep what was deferred before this transaction (committed now,
        on its own), drop the rest, and rebuild the rows from the file."""
        store = self._store
        entries, callbacks = self._carried
        store._pending, store._early = store._early + store._pending, []
        if entries and store._on_disk(store._pending[entries - 1][0]):
            # The commit went through and something after it failed: nothing to redo.
            entries = callbacks = 0
        store._keep_only(entries, callbacks)


class _DeferredAppends:
    """``with store.deferred():`` (a class: this sits on every step's hot path)."""

    __slots__ = ("_held", "_marks", "_outer", "_store")

    def __init__(self, store: InstanceStore) -> None:
        self._store = store
        self._outer = False
        self._marks = (0, 0)
        self._held: dict[str, Any] | None = None

    def __enter__(self) -> None:
        store = self._store
        if store.fault is not None:
            raise store.fault
        self._outer = not store._in_tx
        if self._outer:
            self._marks = (len(store._pending), len(store._committed))
            self._held = store._held_meta
            store._in_tx = store._holding = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._outer:
            return  # inside a transaction: committed with it
        store = self._store
        store._in_tx = store._holding = False
        if exc_type is not None:  # nothing of this block happened
            store._held_meta = self._held
            store._keep_only(*self._marks)
            return
        if not store._pending and store._held_meta is None:
            return
        store._deferred = True
        if store.commit_wanted:
            store.commit_deferred()
        elif not store._flush_scheduled:
            # (asyncio is not imported by readers of stored state: none loaded, no loop)
            running = sys.modules.get("asyncio")
            loop = running._get_running_loop() if running is not None else None
            if loop is None:  # no event loop to come back to: now
                store.commit_deferred()
                return
            store._flush_scheduled = True
            loop.call_soon(store._commit_soon)


class InstanceStore:
    """One instance's durable state, in its own Durable-Object stand-in.

    Args:
        storage: the instance's storage (opened with `SCHEMA` at `SCHEMA_VERSION`).
    """

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage
        self._on_append: AppendListener = _ignore
        self._on_fault: FaultListener = _ignore
        self._committed: list[Callable[[], None]] = []
        self.fault: StorageError | None = None
        """The storage fault that stopped this store's writes, until `clear_fault`."""
        self._pending: list[tuple[Any, ...]] = []
        self._early: list[tuple[Any, ...]] = []
        """Entries of the open transaction `_write_pending` wrote already (kept for `_undo`)."""
        self._in_tx = False
        self._holding = False
        """Inside a `deferred` block (not a transaction): writes are held."""
        self._held_meta: dict[str, Any] | None = None
        """The metadata a `deferred` block wrote, for the next commit."""
        self._meta_put = False
        """Whether the open transaction wrote the metadata itself (newer than any held)."""
        self._flush_scheduled = False
        self.commit_wanted = False
        """Set by `want_commit`: entries `deferred` would keep are committed at once."""
        self._next_id = 1 if storage.is_new else self._read_next_id()  # a new file's log is empty
        self.rows: dict[str, StepRow] = {}
        """Every step, folded from the log."""

    @classmethod
    def open(cls, namespace: DurableObjectNamespace, instance_id: str, *,
             create: bool = True) -> InstanceStore:
        """Open the store of ``instance_id`` in ``namespace`` (creating it if ``create``).

        Raises:
            StorageError: the file cannot be opened (`DamagedStateError` if it is damaged).
        """
        storage = namespace.open(instance_id, SCHEMA, SCHEMA_VERSION, create=create)
        try:
            return cls(storage)
        except BaseException:
            storage.close()
            raise

    def listen(self, on_append: AppendListener, on_fault: FaultListener = _ignore) -> None:
        """Tell ``on_append`` of every entry appended from now on (for live subscribers),
        and ``on_fault`` of a storage fault."""
        self._on_append = on_append
        self._on_fault = on_fault

    @property
    def path(self) -> str:
        return str(self._storage.path)

    def failed(self, fault: StorageError) -> None:
        """Stop writing after ``fault`` (the first one is kept), and say so."""
        first = self.fault is None
        if first:
            self.fault = fault
        self._storage.release()  # the next use opens the file afresh
        if first:
            self._on_fault(fault)

    def clear_fault(self) -> None:
        """Write again (after a fault): the rows are reloaded from the file.

        Raises:
            StorageError: the file still cannot be read (the fault is kept).
        """
        fault, self.fault = self.fault, None
        try:
            # Results deferred when the fault came are still held: they are written first,
            # with the ids they were given.
            self._next_id = max(self._read_next_id(),
                                self._pending[-1][0] + 1 if self._pending else 0)
            self.commit_deferred()
            self.load()
        except StorageError:
            self.fault = fault
            raise

    def _read_next_id(self) -> int:
        return int(self._storage.sql.exec("SELECT max(id) FROM log").raw()[0][0] or 0) + 1

    @property
    def _unwritten(self) -> bool:
        """A file created by this store that nothing was written to yet: nothing to read."""
        return self._storage.is_new and self._next_id == 1

    def when_committed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the open transaction commits (never if it rolls back)."""
        assert self._in_tx, "when_committed() is for writes inside a transaction"
        self._committed.append(callback)

    @property
    def _deferred(self) -> bool:
        """Whether `_pending` holds entries of `deferred` blocks, not yet committed."""
        return output_gate.holds(self)

    @_deferred.setter
    def _deferred(self, waiting: bool) -> None:
        if waiting:
            output_gate.hold(self)
        else:
            output_gate.release(self)

    def _keep_only(self, entries: int, callbacks: int) -> None:
        """After a failed block: keep the first ``entries`` pending entries (deferred before
        it) and ``callbacks`` commit callbacks, committed now on their own (or held, at a
        fault, for `clear_fault`); drop the rest and rebuild the rows from the file."""
        self._pending = self._pending[:entries]
        self._committed = self._committed[:callbacks]
        self._deferred = bool(entries) or self._held_meta is not None
        try:
            self.commit_deferred()
            self.load()  # what was folded in memory did not happen
        except StorageError as exc:
            self.failed(exc)  # rows are stale: reloaded when the fault clears

    def _on_disk(self, entry_id: int) -> bool:
        """Whether the log entry ``entry_id`` is in the file (``False`` if it cannot be read)."""
        try:
            return self._read_next_id() > entry_id
        except StorageError:
            return False

    def want_commit(self) -> None:
        """Have the entries appended so far committed at the end of the current block, even a
        `deferred` one (fault injection crashes right after a chosen entry this way)."""
        self.commit_wanted = True

    def deferred(self) -> _DeferredAppends:
        """Append entries that are committed with the next transaction, the next read of the
        log, `release`/`close`, or at the event loop's next turn, whichever comes first.

        For a step's result: the next step's start commits it, so a run of steps costs one
        commit each, and the result is on disk before anything that could depend on it
        (the next callback, a sleep, the instance's end, another task's turn). A crash
        before that loses it as it would an uncommitted result: the step runs again.
        """
        return _DeferredAppends(self)

    def commit_deferred(self) -> None:
        """Commit what `deferred` left pending, now (nothing if there is none).

        Raises:
            StorageError: the commit failed (the store stops writing).
        """
        if self._deferred and not self._in_tx and self.fault is None:
            with self.transaction():
                pass

    def _commit_soon(self) -> None:
        self._flush_scheduled = False
        if self._storage.is_closed:
            return
        try:
            self.commit_deferred()
        except StorageError:
            pass  # `failed` told the engine; the entries stay held until the fault clears

    def rollback_closed(self) -> bool:
        """Whether the end of the current rollback phase (its outcome) is logged already."""
        self.commit_deferred()
        last = self._storage.sql.exec(
            "SELECT event FROM log WHERE event IN (?, ?, ?) ORDER BY id DESC LIMIT 1",
            LogEvent.ROLLBACK_START.value, LogEvent.ROLLBACK_COMPLETE.value,
            LogEvent.ROLLBACK_FAILED.value).raw()
        return bool(last) and last[0][0] != LogEvent.ROLLBACK_START.value

    def release(self) -> None:
        """Give back the file descriptor until the next use (an idle or finished instance).

        Raises:
            StorageError: what `deferred` left could not be committed first.
        """
        self.commit_deferred()
        self._storage.release()

    @property
    def is_new(self) -> bool:
        """Whether the file did not exist before it was opened."""
        return self._storage.is_new

    @property
    def closed(self) -> bool:
        """Whether the store was closed for good."""
        return self._storage.is_closed

    def close(self) -> None:
        """Commit what `deferred` left (if it can: a crashed store loses it) and close the
        file (idempotent)."""
        if not self._storage.is_closed:
            try:
                self.commit_deferred()
            except StorageError:
                pass  # as a crash would: the entries are lost, the state on disk is whole
        self._deferred = False
        self._held_meta = None
        self._storage.close()

    def transaction(self) -> _StoreTransaction:
        """Writes inside are committed together at the end, or not at all."""
        return _StoreTransaction(self)

    # -- metadata and the alarm --------------------------------------------------------------

    def read_meta(self) -> InstanceMeta | None:
        """The instance's metadata, or ``None`` if it was never written."""
        if self._unwritten:
            return None
        if self._held_meta is not None and not self._meta_put:
            return InstanceMeta.from_json(self._held_meta)
        data = self._storage.get("meta")
        return None if data is None else InstanceMeta.from_json(data)

    def write_meta(self, meta: InstanceMeta) -> None:
        """Persist ``meta`` (inside a transaction, or held by a `deferred` block until the
        next commit, as its entries are)."""
        if self._holding:
            self._held_meta = meta.to_json()
        else:
            self._storage.put("meta", meta.to_json())
            self._meta_put = True

    def alarm(self) -> float | None:
        """When the instance's wake-up is due (epoch ms), if one is set."""
        return self._storage.get_alarm()

    def set_alarm(self, at_ms: float) -> None:
        """Schedule the instance's wake-up (the Durable Object alarm)."""
        self._storage.set_alarm(at_ms)

    def delete_alarm(self) -> None:
        """Cancel the wake-up."""
        self._storage.delete_alarm()

    def erase(self) -> None:
        """Erase everything (what a create that crashed before it was indexed left)."""
        self._pending, self._early, self._deferred = [], [], False
        self._held_meta = None
        self._storage.delete_all()
        self.rows = {}
        self._next_id = 1

    # -- the log ---------------------------------------------------------------------------

    def _flush(self) -> None:
        # One multi-row INSERT per (up to) 256 entries: far cheaper than executemany for the
        # two to six entries a transition writes, and within SQLite's bound on parameters.
        pending = self._pending
        for at in range(0, len(pending), _FLUSH_CHUNK):
            chunk = pending[at:at + _FLUSH_CHUNK] if len(pending) > _FLUSH_CHUNK else pending
            sql = _INSERTS.get(len(chunk))
            if sql is None:
                sql = _INSERT + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                if len(_INSERTS) < 16:
                    _INSERTS[len(chunk)] = sql
            self._storage.sql.exec(sql, *chain.from_iterable(chunk))

    def _write_pending(self) -> None:
        """Write the entries pending so far now, inside the open transaction (before a
        statement whose effect depends on their order)."""
        if self._pending:
            self._flush()
            self._early.extend(self._pending)
            self._pending = []

    def append(self, event: str, ts: float, row: StepRow | None = None, *,
               attempt: int | None = None, data: dict[str, Any] | None = None,
               key: str | None = None, label: str | None = None,
               text: str | None = None) -> StepRow | None:
        """Append one entry (inside `transaction`) and fold it into `rows`.

        ``text`` may give the JSON of ``data`` already encoded (it spares a second encoding
        of a step's output).
        """
        assert self._in_tx, "log entries are appended inside a transaction"
        if row is not None:
            key, label = row.key, row.label
        entry_id = self._next_id
        self._next_id += 1
        if text is None and data is not None:
            text = dumps(data)
        self._pending.append((entry_id, ts, str(event), key, label, attempt, text))
        touched = fold(self.rows, event, key, ts, attempt, data)
        if data is not None and "output" in data and touched is not None and touched.sensitive:
            data = public_data(data, touched)
        self._on_append(entry_id, event, label, attempt, data, ts)
        return touched

    def load(self) -> dict[str, StepRow]:
        """Rebuild every row from the persisted log (nothing to read in a new, unwritten file)."""
        if self._unwritten and not self._deferred and not self._early:
            self.rows = {}
            return self.rows
        self.commit_deferred()
        rows: dict[str, StepRow] = {}
        cur = self._storage.sql.exec("SELECT ts, event, key, attempt, data FROM log ORDER BY id")
        for ts, event, key, attempt, data in cur.raw():
            fold(rows, event, key, ts, attempt, loads(data) if data else None)
        self.rows = rows
        return rows

    def forget(self, keys: set[str] | None = None) -> None:
        """Erase the entries of ``keys`` (all entries if ``None``) and any buffered events.

        Call inside a transaction, then `load` to rebuild the rows.
        """
        self._write_pending()  # entries appended before this go first, as they happened
        if keys is None:
            self._storage.sql.exec("DELETE FROM log")
        else:
            for key in keys:
                self._storage.sql.exec("DELETE FROM log WHERE key = ?", key)
            # The instance's own entries go too (failure, rollback phase, pauses), but for
            # the first queued and start entries, as Cloudflare's engine keeps them.
            self._storage.sql.exec(
                "DELETE FROM log WHERE key IS NULL AND event NOT IN (?, ?)",
                LogEvent.WORKFLOW_QUEUED.value, LogEvent.WORKFLOW_START.value)
        self._storage.sql.exec("DELETE FROM inbox")  # buffered events go, as on Cloudflare

    def entries(self, after: int = 0, *, instance_level: bool = False) -> list[dict[str, Any]]:
        """The log as dicts, oldest first (internal bookkeeping fields left out).

        ``instance_level``: only the instance's own entries (queued, start, end, rollback
        phase, events received), not its steps'.
        """
        self.commit_deferred()
        rows = self._storage.sql.exec(
            "SELECT id, ts, event, key, step, attempt, data FROM log WHERE id > ? "
            + ("AND key IS NULL " if instance_level else "") + "ORDER BY id", after)
        steps = self.rows
        return [
            {"id": r["id"], "timestamp": r["ts"], "event": r["event"], "step": r["step"],
             "attempt": r["attempt"],
             "data": public_data(loads(r["data"]) if r["data"] else None, steps.get(r["key"]))}
            for r in rows
        ]

    # -- the event inbox -------------------------------------------------------------------

    def buffer_event(self, event_type: str, payload_json: str, ts: float) -> None:
        """Keep an event until a ``wait_for_event`` of its type takes it (inside a transaction)."""
        self._storage.sql.exec("INSERT INTO inbox (type, payload, ts) VALUES (?, ?, ?)",
                               event_type, payload_json, ts)

    def oldest_event(self, event_type: str) -> tuple[int, dict[str, Any]] | None:
        """The oldest buffered event of ``event_type``: ``(id, {payload, timestamp, type})``."""
        got = self._storage.sql.exec(
            "SELECT id, payload, ts FROM inbox WHERE type = ? ORDER BY id LIMIT 1",
            event_type).first()
        if got is None:
            return None
        return got["id"], {"payload": loads(got["payload"]), "timestamp": got["ts"],
                           "type": event_type}

    def take_event(self, event_id: int) -> None:
        """Remove a delivered event (inside the transaction that logs its delivery)."""
        self._storage.sql.exec("DELETE FROM inbox WHERE id = ?", event_id)
