"""Durable Objects bindings (``[[durable_objects.bindings]]``): the project's own classes.

``env.COUNTER`` is a `DurableObjectNamespace`: ``idFromName`` / ``idFromString`` /
``newUniqueId`` make a `DurableObjectId`, ``get(id)`` / ``getByName(name)`` a
`DurableObjectStub`. A stub calls methods of the one live instance of the class for that id
(``await stub.add(1)``, arguments and results crossing as over RPC) or its
``fetch(request)``. The instance is built once per id as ``cls(ctx, env)``; ``ctx`` is a
`DurableObjectState` whose ``storage`` is the object's own SQLite file (the stand-in the
Workflows engine persists with, `durable_object.DurableObjectStorage`), at
``<state>/do/<ClassName>/<id>.sqlite``.

Differences from Cloudflare, on purpose:

- Calls to one object run one at a time (an input gate held for the whole call, not only
  while storage is busy); a call from an object back into itself, directly or through other
  objects, does not wait for itself.
- Each storage call commits on its own: Cloudflare also coalesces the writes made without an
  ``await`` in between into one atomic write; here use ``transaction()`` for that. A
  ``wait_until`` task that writes while a ``transaction()`` of the same object is suspended
  in an ``await`` joins that transaction (and is rolled back with it).
- Values are stored as JSON plus ``bytes`` and ``datetime`` (not the full structured clone).
- ``rowsRead`` counts the rows a statement returned plus those an UPDATE or DELETE changed:
  Cloudflare also counts rows scanned and left out (a ``WHERE`` on an unindexed column).
- Alarm retries have no jitter, and a restart forgets how many times an alarm was retried.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import inspect
import logging
import re
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..clock import Clock, TimerHandle
from ..durable_object import DurableObjectNamespace as _ObjectFiles
from ..durable_object import DurableObjectStorage, OpenFiles, storage_error
from ..errors import EmulatorError
from ..output_gate import open_gate
from ..values import as_epoch_ms, loads
from ..workers_shim.http import Request, Response
from ..workers_shim.rpc import JsDict, round_trip
from .sql_params import sqlite_params

ALARM_RETRY_START_MS = 2_000
"""The first alarm retry comes 2 s after the failure, each next one twice as late."""
ALARM_RETRY_MAX = 6
"""An alarm whose handler keeps failing is retried 6 times, then dropped."""
MAX_KEY_BYTES = 2048
_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")
_RESERVED_TABLES = frozenset({"_kv", "_alarm"})
_ALLOWED_PRAGMAS = frozenset({
    "data_version", "defer_foreign_keys", "foreign_keys", "foreign_key_check",
    "foreign_key_list", "index_info", "index_list", "index_xinfo", "integrity_check",
    "optimize", "quick_check", "table_info", "table_list", "table_xinfo",
    "case_sensitive_like", "legacy_alter_table", "recursive_triggers",
    "reverse_unordered_selects"})
"""What user SQL may run as PRAGMA: schema questions and per-connection SQL behaviour, not
settings that would change the file for the emulator (journal mode, user_version)."""
_BYTES = "$workflows-emulator:bytes"
"""The tag of stored bytes (base64), as `values` tags a datetime."""
_TRANSACTION_SQL = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing.")
_log = logging.getLogger(__name__)

_held: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "workflows_emulator_do_held", default=frozenset())
"""The objects whose input gate the current call chain holds (so re-entry does not wait)."""


class DurableObjectError(Exception):
    """An error a Durable Object API call raises as a JS ``Error`` (a SQL error, say)."""


# -- ids --------------------------------------------------------------------------------------


class DurableObjectId:
    """An object's id: 64 hex digits (``toString()``), and the name it was made from."""

    __slots__ = ("_hex", "name")

    def __init__(self, hex_id: str, name: str | None = None) -> None:
        self._hex = hex_id
        self.name = name

    def toString(self) -> str:
        """The id as 64 lowercase hex digits."""
        return self._hex

    to_string = toString

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        return f"DurableObjectId({self._hex!r}, name={self.name!r})"

    def equals(self, other: DurableObjectId) -> bool:
        """Whether ``other`` names the same object."""
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)


def _id_hex(class_name: str, body: bytes) -> str:
    """16 bytes of id plus 16 bytes binding it to the class, as hex (so ``idFromString`` can
    tell an id of another class)."""
    check = hashlib.sha256(f"{class_name}\0".encode() + body).digest()[:16]
    return (body + check).hex()


# -- stored values ----------------------------------------------------------------------------


def _to_stored(value: Any, where: str) -> Any:
    """``value`` with bytes tagged, checked to be storable (JSON, bytes, datetime)."""
    if value is None or isinstance(value, bool | int | str | datetime):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"{where} is {value!r}, which the emulator cannot store")
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list):
        return [_to_stored(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}: keys must be strings")
            out[key] = _to_stored(item, f"{where}[{key!r}]")
        return out
    raise TypeError(f"{where} is of type {type(value).__name__}, which cannot be stored: use "
                    "None, bool, int, float, str, bytes, datetime, and lists and dicts of them")


def _from_stored(value: Any) -> Any:
    """A stored value as the object reads it back (dicts as `JsDict`, bytes restored)."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_BYTES), str):
            return base64.b64decode(value[_BYTES])
        return JsDict({k: _from_stored(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_from_stored(v) for v in value]
    return value


def _key(key: object, what: str = "key") -> str:
    if not isinstance(key, str):
        raise TypeError(f"storage {what} must be a string, not {type(key).__name__}")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise DurableObjectError(f"Keys cannot be larger than {MAX_KEY_BYTES} bytes.")
    return key


def _options(options: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    merged = dict(options or {})
    merged.update(kwargs)
    return merged


# -- SQL --------------------------------------------------------------------------------------


class _RawRows:
    """``cursor.raw()``: an iterator of rows as lists, with ``toArray()``."""

    def __init__(self, rows: Iterator[list[Any]]) -> None:
        self._rows = rows

    def __iter__(self) -> _RawRows:
        return self

    def __next__(self) -> list[Any]:
        return next(self._rows)

    def toArray(self) -> list[list[Any]]:
        """Every remaining row."""
        return list(self._rows)

    to_array = toArray


class SqlCursor:
    """What ``ctx.storage.sql.exec`` returns: the statement's rows (read at once), as dicts.

    ``toArray()`` / ``one()`` / ``raw()`` / ``next()`` / iteration consume the same rows;
    ``columnNames``, ``rowsRead`` and ``rowsWritten`` describe the statement.
    """

    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]], rows_read: int,
                 rows_written: int) -> None:
        self.columnNames = self.column_names = columns
        self.rowsRead = self.rows_read = rows_read
        self.rowsWritten = self.rows_written = rows_written
        self._rows = iter(rows)

    def _dict(self, row: tuple[Any, ...]) -> JsDict:
        return JsDict(zip(self.columnNames, row, strict=True))

    def __iter__(self) -> Iterator[JsDict]:
        return (self._dict(row) for row in self._rows)

    def toArray(self) -> list[JsDict]:
        """Every remaining row."""
        return list(self)

    to_array = toArray

    def one(self) -> JsDict:
        """The only row; `DurableObjectError` if there are none or several."""
        rows = self.toArray()
        if not rows:
            raise DurableObjectError(
                "Expected exactly one result from SQL query, but got no results.")
        if len(rows) > 1:
            raise DurableObjectError(
                "Expected exactly one result from SQL query, but got multiple results.")
        return rows[0]

    def raw(self) -> _RawRows:
        """The remaining rows as lists of values, in column order."""
        return _RawRows(list(row) for row in self._rows)

    def next(self) -> JsDict:
        """``{"done": False, "value": row}``, then ``{"done": True}`` (the JS iterator API)."""
        row = next(self._rows, None)
        return JsDict(done=True) if row is None else JsDict(done=False, value=self._dict(row))


def _statements(query: str) -> list[str]:
    """``query`` split into its statements (SQLite's own notion of a complete one)."""
    out: list[str] = []
    pending = ""
    pieces = query.split(";")
    for i, piece in enumerate(pieces):
        pending += piece + (";" if i < len(pieces) - 1 else "")
        if sqlite3.complete_statement(pending) or i == len(pieces) - 1:
            if pending.strip(" \t\r\n;"):
                out.append(pending)
            pending = ""
    return out or [query]


def _binding(value: object, index: int) -> Any:
    if value is None or isinstance(value, int | float | str | bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"SQL binding {index + 1} is of type {type(value).__name__}: bind None, a "
                    "number, a string or bytes")


_LEADING = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(\w+)", re.S)


def _leading_word(statement: str) -> str:
    """The statement's first keyword, upper-cased (after comments)."""
    found = _LEADING.match(statement)
    return found.group(1).upper() if found else ""


class SqlStorage:
    """``ctx.storage.sql``: ``exec(query, *bindings)`` on the object's SQLite database."""

    def __init__(self, owner: _LiveObject) -> None:
        self._owner = owner

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        """Run ``query`` (several ``;``-separated statements allowed, only the last with
        ``?`` bindings) and return the last statement's cursor.

        Raises:
            DurableObjectError: the SQL failed (the message ends with SQLite's error code),
                or it touched the emulator's own tables or a transaction statement.
        """
        if not isinstance(query, str):
            raise TypeError(f"sql.exec() takes the query as a string, not {type(query).__name__}")
        values = tuple(_binding(v, i) for i, v in enumerate(bindings))
        statements = _statements(query)
        storage = self._owner.storage
        # Writes run in a transaction (atomic, and a commit the storage hooks see); a lone
        # SELECT needs none.
        reads_only = len(statements) == 1 and _leading_word(statements[0]) in ("SELECT", "VALUES")
        with contextlib.nullcontext() if reads_only else storage.transaction():
            return self._exec(storage.connection(), statements, values)

    @staticmethod
    def _exec(conn: sqlite3.Connection, statements: list[str],
              values: tuple[Any, ...]) -> SqlCursor:
        refused: list[str] = []
        conn.set_authorizer(_authorizer(refused))
        try:
            for statement in statements[:-1]:
                _run(conn, statement, (), refused, several=True)
            return _run(conn, statements[-1], values, refused, several=False)
        finally:
            conn.set_authorizer(None)

    @property
    def databaseSize(self) -> int:
        """The database file's size in bytes (pages in use times the page size)."""
        rows = self._owner.storage.sql.exec(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").raw()
        return int(rows[0][0])

    database_size = databaseSize


def _authorizer(refused: list[str]) -> Callable[[int, str | None, str | None, str | None,
                                                 str | None], int]:
    def check(action: int, arg1: str | None, arg2: str | None, _db: str | None,
              _trigger: str | None) -> int:
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            refused.append(_TRANSACTION_SQL)
            return sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            refused.append("ATTACH and DETACH are not allowed: a Durable Object has one "
                           "database: SQLITE_AUTH")
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in _ALLOWED_PRAGMAS:
            refused.append(f"PRAGMA {arg1} is not allowed in a Durable Object (allowed: "
                           f"{', '.join(sorted(_ALLOWED_PRAGMAS))}): SQLITE_AUTH")
            return sqlite3.SQLITE_DENY
        for name in (arg1, arg2):
            if name is not None and name.lower() in _RESERVED_TABLES:
                refused.append(f"access to {name} is prohibited (the emulator keeps the "
                               "key-value API and the alarm there): SQLITE_AUTH")
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    return check


def _run(conn: sqlite3.Connection, statement: str, values: tuple[Any, ...],
         refused: list[str], *, several: bool) -> SqlCursor:
    before = conn.total_changes
    try:
        cursor = conn.execute(statement, sqlite_params(statement, values))
        rows = cursor.fetchall()
    except sqlite3.ProgrammingError as exc:
        if "bindings" not in str(exc):
            raise DurableObjectError(str(exc)) from exc
        if several:
            raise DurableObjectError(
                "When executing multiple SQL statements in a single call, only the last "
                "statement can have parameters.") from exc
        raise DurableObjectError("Wrong number of parameter bindings for SQL query.") from exc
    except sqlite3.Error as exc:
        if refused:
            raise DurableObjectError(refused[0]) from exc
        raise _sql_error(conn, exc) from exc
    written = conn.total_changes - before
    changed_rows_read = _leading_word(statement) in ("UPDATE", "DELETE")
    columns = [d[0] for d in cursor.description or ()]
    return SqlCursor(columns, rows, len(rows) + (written if changed_rows_read else 0), written)


_USER_ERRORS = ("SQLITE_ERROR", "SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_RANGE",
                "SQLITE_TOOBIG", "SQLITE_AUTH")


def _sql_error(conn: sqlite3.Connection, exc: sqlite3.Error) -> Exception:
    """A mistake in the SQL as `DurableObjectError` (``"<message>: SQLITE_<CODE>"``); a
    failure of the disk as `StorageError`."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if not name or name.startswith(_USER_ERRORS):
        code = "_".join(name.split("_")[:2]) if name else "SQLITE_ERROR"
        return DurableObjectError(f"{exc}: {code}")
    return storage_error(Path(_db_path(conn)), exc)


def _db_path(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row else "?"


# -- storage ----------------------------------------------------------------------------------


class _Rollback(Exception):
    """Unwinds a transaction whose body called ``txn.rollback()``."""


class _KeyValue:
    """The key-value and alarm methods shared by ``ctx.storage`` and a transaction's ``txn``."""

    def __init__(self, owner: _LiveObject) -> None:
        self._owner = owner

    async def get(self, key: str | list[str], options: Mapping[str, Any] | None = None,
                  /, **kwargs: Any) -> Any:
        """The value under ``key`` (``None`` if absent); for a list of keys, a dict of those
        present, in key order."""
        if isinstance(key, list | tuple):
            keys = [_key(k) for k in key]
            return JsDict({k: v for k in sorted(set(keys))
                           if (v := self._owner.read(k)) is not None})
        return self._owner.read(_key(key))

    async def put(self, key: str | Mapping[str, Any], value: Any = None,
                  options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Store ``value`` under ``key``, or every entry of a dict ``put({k: v, ...})``."""
        if isinstance(key, Mapping):
            entries = {_key(k): _stored_value(v, k) for k, v in key.items()}
        else:
            entries = {_key(key): _stored_value(value, key)}
        storage = self._owner.storage
        with storage.transaction():
            for k, v in entries.items():
                storage.put(k, v)

    async def delete(self, key: str | list[str], options: Mapping[str, Any] | None = None,
                     /, **kwargs: Any) -> bool | int:
        """Delete ``key`` (True if it existed) or a list of keys (how many existed)."""
        keys = [_key(k) for k in key] if isinstance(key, list | tuple) else [_key(key)]
        storage = self._owner.storage
        with storage.transaction():
            deleted = sum(1 for k in keys if storage.delete(k))
        return deleted if isinstance(key, list | tuple) else deleted > 0

    async def list(self, options: Mapping[str, Any] | None = None, /,
                   **kwargs: Any) -> JsDict:
        """Entries in key order: ``prefix``, ``start`` (inclusive) or ``startAfter``, ``end``
        (exclusive), ``reverse`` and ``limit``."""
        return self._owner.list(_options(options, kwargs))

    async def getAlarm(self, options: Mapping[str, Any] | None = None, /,
                       **kwargs: Any) -> float | None:
        """The alarm's time in epoch ms, or ``None`` (also while the alarm itself runs)."""
        return self._owner.get_alarm()

    async def setAlarm(self, scheduled: float | datetime,
                       options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Set the object's one alarm for ``scheduled`` (epoch ms or a datetime)."""
        self._owner.set_alarm(scheduled)

    async def deleteAlarm(self, options: Mapping[str, Any] | None = None, /,
                          **kwargs: Any) -> None:
        """Cancel the alarm."""
        self._owner.delete_alarm()

    get_alarm = getAlarm
    set_alarm = setAlarm
    delete_alarm = deleteAlarm


def _stored_value(value: Any, key: object) -> Any:
    if value is None:
        raise TypeError("put() called with undefined value.")
    return _to_stored(value, f"the value of {key!r}")


class DurableObjectTransaction(_KeyValue):
    """The ``txn`` a ``transaction()`` callback gets: the storage methods plus ``rollback()``."""

    def __init__(self, owner: _LiveObject) -> None:
        super().__init__(owner)
        self.rolled_back = False

    def rollback(self) -> None:
        """Undo the transaction's writes when the callback returns."""
        self.rolled_back = True


class ObjectStorage(_KeyValue):
    """``ctx.storage``: awaitable key-value methods, ``transaction``, the alarm and ``sql``."""

    def __init__(self, owner: _LiveObject) -> None:
        super().__init__(owner)
        self.sql = SqlStorage(owner)

    async def deleteAll(self, options: Mapping[str, Any] | None = None, /,
                        **kwargs: Any) -> None:
        """Erase every key and every SQL table (the alarm stays, as on Cloudflare)."""
        self._owner.delete_all()

    delete_all = deleteAll

    async def transaction(self, closure: Callable[[DurableObjectTransaction], Awaitable[Any]],
                          options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Run ``await closure(txn)`` in one transaction: committed when it returns, rolled
        back if it raises (the exception goes on) or calls ``txn.rollback()``."""
        txn = DurableObjectTransaction(self._owner)
        try:
            with self._owner.storage.transaction():
                result = await closure(txn)
                if txn.rolled_back:
                    raise _Rollback
        except _Rollback:
            return result
        return result

    def transactionSync(self, closure: Callable[[], Any]) -> Any:
        """Run ``closure()`` (not async) in one transaction, rolled back if it raises."""
        with self._owner.storage.transaction():
            return closure()

    transaction_sync = transactionSync

    async def sync(self) -> None:
        """Every write is already on disk: nothing to wait for."""


# -- the object ------------------------------------------------------------------------------


class DurableObjectState:
    """The ``ctx`` a Durable Object is built with: ``id``, ``storage``, ``wait_until``,
    ``block_concurrency_while``."""

    def __init__(self, owner: _LiveObject) -> None:
        self._owner = owner
        self.id = owner.id
        self.storage = ObjectStorage(owner)

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Run ``awaitable`` in the background."""
        self._owner.background(asyncio.ensure_future(awaitable))

    waitUntil = wait_until

    def block_concurrency_while(self, callback: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        """Run ``await callback()``; no call reaches the object until it is done (typically
        from ``__init__``, to load state). Awaiting the result gives ``callback``'s."""
        task = asyncio.ensure_future(callback())
        self._owner.gates.append(task)
        return task

    blockConcurrencyWhile = block_concurrency_while


class _LiveObject:
    """One object of a namespace: its storage (opened on first use), its instance (built on
    first call), its input gate and its alarm timer."""

    def __init__(self, namespace: DurableObjectNamespace, object_id: DurableObjectId) -> None:
        self.namespace = namespace
        self.id = object_id
        self.gate = asyncio.Lock()
        self.gates: list[asyncio.Future[Any]] = []
        self.instance: Any = None
        self.alarm_timer: TimerHandle | None = None
        self.running_alarm: float | None = None
        self._storage: DurableObjectStorage | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- storage -----------------------------------------------------------------------------

    @property
    def storage(self) -> DurableObjectStorage:
        if self._storage is None or self._storage.is_closed:
            self._storage = self.namespace.object_files.open(self.id.toString())
        return self._storage

    def read(self, key: str) -> Any:
        stored = self.storage.get(key)
        return None if stored is None else _from_stored(stored)

    def list(self, opts: dict[str, Any]) -> JsDict:
        if "start" in opts and "startAfter" in opts:
            raise TypeError("list() cannot be called with both start and startAfter values.")
        where: list[str] = ["1"]
        args: list[Any] = []
        for option, test in (("start", "key >= ?"), ("startAfter", "key > ?"),
                             ("end", "key < ?")):
            if opts.get(option) is not None:
                where.append(test)
                args.append(_key(opts[option], option))
        prefix = opts.get("prefix")
        if prefix is not None:
            where.append("substr(key, 1, ?) = ?")
            args += [len(_key(prefix, "prefix")), prefix]
        order = "DESC" if opts.get("reverse") else "ASC"
        limit = opts.get("limit")
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise TypeError("List limit must be positive.")
        rows = self.storage.sql.exec(
            f"SELECT key, value FROM _kv WHERE {' AND '.join(where)} ORDER BY key {order}"
            + (" LIMIT ?" if limit is not None else ""),
            *args, *([limit] if limit is not None else [])).raw()
        return JsDict({k: _from_stored(loads(v)) for k, v in rows})

    def delete_all(self) -> None:
        storage = self.storage
        with storage.transaction():
            tables = [r[0] for r in storage.sql.exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'").raw()]
            for table in tables:
                if table in _RESERVED_TABLES:
                    if table == "_kv":
                        storage.sql.exec("DELETE FROM _kv")
                    continue
                quoted = table.replace('"', '""')
                storage.sql.exec(f'DROP TABLE IF EXISTS "{quoted}"')

    # -- the alarm ---------------------------------------------------------------------------

    def get_alarm(self) -> float | None:
        at = self.storage.get_alarm()
        if at is not None and at == self.running_alarm:
            return None
        return at

    def set_alarm(self, scheduled: float | datetime) -> None:
        if not callable(getattr(self.namespace.cls, "alarm", None)):
            raise TypeError("Your Durable Object class must have an alarm() handler in order "
                            "to call setAlarm()")
        if isinstance(scheduled, datetime):
            at = float(int(as_epoch_ms(scheduled)))
        elif isinstance(scheduled, int | float) and not isinstance(scheduled, bool):
            at = float(int(scheduled))
        else:
            raise TypeError("Failed to execute 'setAlarm' on 'DurableObjectStorage': parameter "
                            "1 is not of type 'date' (pass epoch milliseconds or a datetime).")
        storage = self.storage
        with storage.transaction():
            storage.set_alarm(at)
        self.arm(at, 0)

    def delete_alarm(self) -> None:
        storage = self.storage
        with storage.transaction():
            storage.delete_alarm()
        self.disarm()

    def arm(self, at: float, retry_count: int) -> None:
        """Call the alarm handler at ``at`` on the namespace's clock."""
        self.disarm()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self.alarm_timer = None
            # A fresh context: the handler holds no gate of whoever moved the clock.
            self.background(loop.create_task(self.run_alarm(at, retry_count),
                                             context=contextvars.Context()))

        self.alarm_timer = self.namespace.clock.call_at(at, fire)

    def disarm(self) -> None:
        if self.alarm_timer is not None:
            self.alarm_timer.cancel()
            self.alarm_timer = None

    async def run_alarm(self, at: float, retry_count: int) -> None:
        async with self.turn():
            storage = self.storage
            if storage.get_alarm() != at:
                return  # replaced or deleted since the timer was set
            self.running_alarm = at
            try:
                instance = await self.ready()
                handler = instance.alarm
                info = JsDict(retryCount=retry_count, isRetry=retry_count > 0)
                result = handler(info) if _takes_argument(handler) else handler()
                if inspect.isawaitable(result):
                    await result
                failure: BaseException | None = None
            except Exception as exc:
                failure = exc
            finally:
                self.running_alarm = None
            if storage.get_alarm() != at:
                return  # the handler set (or deleted) the alarm itself
            if failure is None or retry_count >= ALARM_RETRY_MAX:
                if failure is not None:
                    _log.warning("alarm() of %s %s failed %d times; giving up: %r",
                                 self.namespace.class_name, self.id, retry_count + 1, failure)
                with storage.transaction():
                    storage.delete_alarm()
                return
            retry_at = self.namespace.clock.now_ms() + (ALARM_RETRY_START_MS << retry_count)
            _log.warning("alarm() of %s %s failed (%r); retrying in %d s",
                         self.namespace.class_name, self.id, failure,
                         (ALARM_RETRY_START_MS << retry_count) // 1000)
            with storage.transaction():
                storage.set_alarm(retry_at)
        self.arm(retry_at, retry_count + 1)

    # -- calls -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the object's input gate (one call at a time); re-entry does not wait."""
        open_gate()  # held step results are on disk before the object acts
        held = _held.get()
        if id(self) in held:
            yield
            return
        async with self.gate:
            token = _held.set(held | {id(self)})
            try:
                yield
            finally:
                _held.reset(token)

    async def ready(self) -> Any:
        """The instance, built on first use, once any ``blockConcurrencyWhile`` is done."""
        if self.instance is None:
            namespace = self.namespace
            ctx = DurableObjectState(self)
            instance = namespace.cls(ctx, namespace.env)
            if getattr(instance, "ctx", None) is None:
                instance.ctx = ctx
            if getattr(instance, "env", None) is None:
                instance.env = namespace.env
            self.instance = instance
        while self.gates:
            gate = self.gates.pop(0)
            try:
                await gate
            except BaseException:
                self.instance = None  # as Cloudflare resets an object whose gate failed
                self.gates.clear()
                raise
        return self.instance

    def background(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        while True:
            # Done tasks leave the set by a callback that runs only on a later loop turn, and
            # awaiting finished tasks does not yield (3.12+): drop them here, or this spins.
            self._tasks.difference_update([t for t in self._tasks if t.done()])
            if not self._tasks:
                return
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        self.disarm()
        for task in list(self._tasks):
            task.cancel()
        if self._storage is not None:
            self._storage.close()


def _takes_argument(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in params)


# -- stubs ------------------------------------------------------------------------------------


def _methods(cls: type) -> list[str]:
    return sorted(n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n)))


def make_request(input: str | Request, init: Mapping[str, Any] | None,
                 kwargs: dict[str, Any]) -> Request:
    """A `Request` from ``fetch``'s arguments: a URL or a `Request`, plus ``method``,
    ``headers`` and ``body`` as a dict or keywords."""
    opts = _options(init, kwargs)
    unknown = set(opts) - {"method", "headers", "body"}
    if unknown:
        raise TypeError(f"fetch() got unknown option(s) {sorted(unknown)}: use method, "
                        "headers, body")
    if isinstance(input, Request):
        if not opts:
            return input
        return Request(input.url, method=opts.get("method", input.method),
                       headers=opts.get("headers", input.headers),
                       body=opts["body"] if "body" in opts else input._take())
    if not isinstance(input, str):
        raise TypeError(f"fetch() takes a URL string or a Request, not {type(input).__name__}")
    if "://" not in input:
        raise TypeError(f"Fetch API cannot load: {input} (use an absolute URL such as "
                        f"https://example.com{input if input.startswith('/') else '/' + input})")
    return Request(input, method=opts.get("method", "GET"), headers=opts.get("headers"),
                   body=opts.get("body"))


async def call_fetch(target: Any, what: str, request: Request) -> Response:
    """``await target.fetch(request)``, checked to be a `Response`."""
    handler = getattr(target, "fetch", None)
    if not callable(handler):
        raise TypeError(f"Handler does not export a fetch() function ({what} has no fetch "
                        "method).")
    result = handler(request)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, Response):
        raise TypeError(f"Incorrect type for Promise: the Promise did not resolve to "
                        f"'Response' ({what}.fetch returned {type(result).__name__}).")
    return result


def rpc_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> list[Any]:
    """Arguments as the callee gets them: through RPC, trailing keywords as one dict (as
    Pyodide passes them)."""
    sent = [*args, dict(kwargs)] if kwargs else list(args)
    return list(round_trip(sent, f"the arguments of {what}"))


class DurableObjectStub:
    """``env.NS.get(id)``: ``await stub.method(...)`` (RPC) and ``await stub.fetch(...)``."""

    def __init__(self, namespace: DurableObjectNamespace, object_id: DurableObjectId) -> None:
        self._namespace = namespace
        self.id = object_id
        self.name = object_id.name

    def __repr__(self) -> str:
        return f"DurableObjectStub({self._namespace.class_name}, {self.id})"

    async def fetch(self, input: str | Request, init: Mapping[str, Any] | None = None, /,
                    **kwargs: Any) -> Response:
        """Call the object's ``fetch(request)`` and return its `Response`."""
        request = make_request(input, init, kwargs)
        live = self._namespace.live(self.id)
        async with live.turn():
            instance = await live.ready()
            return await call_fetch(instance, self._namespace.class_name, request)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        cls = self._namespace.cls
        if name.startswith("_") or not callable(getattr(cls, name, None)):
            raise AttributeError(
                f'The RPC receiver does not implement the method "{name}": Durable Object '
                f"class {cls.__name__} has the methods {', '.join(_methods(cls)) or 'none'}")

        async def call(*args: Any, **kwargs: Any) -> Any:
            what = f"{cls.__name__}.{name}()"
            sent = rpc_arguments(args, kwargs, what)
            live = self._namespace.live(self.id)
            async with live.turn():
                instance = await live.ready()
                result = getattr(instance, name)(*sent)
                if inspect.isawaitable(result):
                    result = await result
            return round_trip(result, f"the result of {what}")

        call.__name__ = name
        return call


class DurableObjectNamespace:
    """``env.MY_OBJECT``: the objects of one Durable Object class of the project.

    Args:
        cls: the project's class (a ``workers.DurableObject`` subclass, or any class built
            as ``cls(ctx, env)``).
        class_name: its ``class_name`` in the config (names the folder and ids).
        directory: the class's folder, ``layout.do_dir(state, class_name)``.
        clock: the emulator's clock (alarms).
        env: the Worker's env the objects get (or later, `attach_env`).
        files: an open-files budget to share (default: one of the namespace's own).
    """

    def __init__(self, cls: type, *, class_name: str, directory: Path, clock: Clock,
                 env: Any = None, files: OpenFiles | None = None) -> None:
        if not isinstance(cls, type):
            raise TypeError(f"DurableObjectNamespace needs the class {class_name}, not "
                            f"{type(cls).__name__}")
        self.cls = cls
        self.class_name = class_name
        self.directory = Path(directory)
        self.clock = clock
        self.env = env
        self._own_files = files is None
        self.object_files = _ObjectFiles(self.directory, files if files is not None else OpenFiles())
        self._live: dict[str, _LiveObject] = {}
        self._closed = False

    def attach_env(self, env: Any) -> None:
        """Give the objects the Worker's env (which holds this namespace itself)."""
        self.env = env

    def __repr__(self) -> str:
        return f"DurableObjectNamespace({self.class_name})"

    # -- ids ---------------------------------------------------------------------------------

    def idFromName(self, name: str) -> DurableObjectId:
        """The id of the object named ``name`` (the same name gives the same id)."""
        if not isinstance(name, str):
            raise TypeError(f"idFromName() takes a string, not {type(name).__name__}")
        body = hashlib.sha256(f"{self.class_name}\0name\0{name}".encode("utf-8",
                                                                         "surrogatepass")).digest()
        return DurableObjectId(_id_hex(self.class_name, body[:16]), name)

    def idFromString(self, id: str) -> DurableObjectId:
        """The id whose ``toString()`` is ``id``.

        Raises:
            TypeError: not 64 hex digits, or an id of another class.
        """
        if not isinstance(id, str) or not _HEX_ID.fullmatch(id):
            raise TypeError("Invalid Durable Object ID: must be 64 hex digits")
        hex_id = id.lower()
        if _id_hex(self.class_name, bytes.fromhex(hex_id[:32])) != hex_id:
            raise TypeError("Durable Object ID is not valid for this namespace.")
        return DurableObjectId(hex_id)

    def newUniqueId(self, options: Mapping[str, Any] | None = None, /,
                    **kwargs: Any) -> DurableObjectId:
        """A new random id (``jurisdiction`` is accepted and ignored)."""
        return DurableObjectId(_id_hex(self.class_name, secrets.token_bytes(16)))

    def get(self, id: DurableObjectId, options: Mapping[str, Any] | None = None, /,
            **kwargs: Any) -> DurableObjectStub:
        """The stub of object ``id`` (``locationHint`` is accepted and ignored)."""
        if not isinstance(id, DurableObjectId):
            raise TypeError(f"get() takes a DurableObjectId (from idFromName, idFromString or "
                            f"newUniqueId), not {type(id).__name__}; use getByName(name) for a "
                            "name")
        self.idFromString(id.toString())  # an id of another class is refused, as on Cloudflare
        return DurableObjectStub(self, id)

    def getByName(self, name: str, options: Mapping[str, Any] | None = None, /,
                  **kwargs: Any) -> DurableObjectStub:
        """``get(idFromName(name))``."""
        return DurableObjectStub(self, self.idFromName(name))

    def jurisdiction(self, name: str) -> DurableObjectNamespace:
        """The same namespace: jurisdictions do not exist locally."""
        return self

    id_from_name = idFromName
    id_from_string = idFromString
    new_unique_id = newUniqueId
    get_by_name = getByName

    # -- objects -----------------------------------------------------------------------------

    def live(self, object_id: DurableObjectId) -> _LiveObject:
        """The live state of object ``object_id`` (made on first use)."""
        if self._closed:
            raise EmulatorError(f"the {self.class_name} namespace is closed")
        key = object_id.toString()
        found = self._live.get(key)
        if found is None:  # its own copy of the id: naming it later changes no caller's id
            found = self._live[key] = _LiveObject(self, DurableObjectId(key, object_id.name))
        elif found.id.name is None and object_id.name is not None:
            found.id.name = object_id.name
        return found

    def resume_alarms(self) -> int:
        """Re-arm the alarms stored in this class's object files (after a restart); how many.

        Call it with the event loop running (the alarms are timers on it).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise EmulatorError("resume_alarms() arms timers on the event loop: call it from "
                                "a running loop (inside an async function)") from None
        armed = 0
        if not self.directory.is_dir():
            return 0
        for path in sorted(self.directory.glob("*.sqlite")):
            if not _HEX_ID.fullmatch(path.stem):
                continue
            live = self.live(DurableObjectId(path.stem.lower()))
            at = live.storage.get_alarm()
            if at is not None:
                live.arm(at, 0)
                armed += 1
        return armed

    async def settle(self) -> None:
        """Wait until no alarm handler (or ``wait_until`` task) of these objects is running."""
        while any(live._tasks for live in self._live.values()):
            for live in list(self._live.values()):
                await live.settle()

    def close(self) -> None:
        """Cancel the alarm timers and running handlers, and close every object file."""
        if self._closed:
            return
        self._closed = True
        for live in self._live.values():
            live.close()
        files = self.object_files.files
        if self._own_files and files is not None:
            files.finish()
