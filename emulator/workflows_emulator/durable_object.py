"""A stand-in for one Durable Object's storage, backed by its own SQLite file (WAL).

The engine persists only through this interface, the shape Cloudflare's Workflows engine
uses: ``sql.exec``, key-value ``get/put/delete/list``, ``transaction()`` and one alarm.
Nothing else in the emulator opens SQLite.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import EmulatorError
from .values import dumps, loads

_SAFE_NAME = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_-]{0,99}")


class StorageHooks:
    """A test seam told of every transaction commit of every Durable Object storage.

    ``before_commit`` may raise (a `sqlite3.OperationalError`, as SQLite would) to inject a
    storage fault: the transaction is then rolled back. ``after_commit`` runs once the
    commit is durable (the place to ``kill -9`` a process at a commit boundary).
    Install with `install_hooks`; the default does nothing.
    """

    def before_commit(self, path: Path) -> None:
        """Called just before ``COMMIT`` of a transaction on the file ``path``."""

    def after_commit(self, path: Path) -> None:
        """Called just after ``COMMIT`` of a transaction on the file ``path``."""


_hooks: StorageHooks | None = None


def install_hooks(hooks: StorageHooks | None) -> StorageHooks | None:
    """Install ``hooks`` for every storage of this process (``None`` removes); returns the old ones."""
    global _hooks
    old, _hooks = _hooks, hooks
    return old


class SqlCursor:
    """The result of `SqlStorage.exec`: rows as dicts, like the Durable Objects cursor."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.column_names: list[str] = [d[0] for d in cursor.description or ()]
        self.rows_written = cursor.rowcount if cursor.rowcount > 0 else 0
        self.last_row_id = cursor.lastrowid

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self._cursor:
            yield dict(zip(self.column_names, row, strict=True))

    def to_array(self) -> list[dict[str, Any]]:
        """All remaining rows."""
        return list(self)

    def raw(self) -> list[tuple[Any, ...]]:
        """All remaining rows as tuples."""
        return self._cursor.fetchall()

    def one(self) -> dict[str, Any]:
        """Exactly one row, or `EmulatorError`."""
        rows = self.to_array()
        if len(rows) != 1:
            raise EmulatorError(f"Expected exactly one result from SQL query, got {len(rows)}")
        return rows[0]

    def first(self) -> dict[str, Any] | None:
        """The first row, or ``None``."""
        row = self._cursor.fetchone()
        return None if row is None else dict(zip(self.column_names, row, strict=True))


class SqlStorage:
    """``storage.sql``: run SQL against this object's database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        """Run one statement with ``?`` bindings and return its cursor."""
        return SqlCursor(self._conn.execute(query, bindings))

    def executescript(self, script: str) -> None:
        """Run several statements (schema set-up)."""
        self._conn.executescript(script)

    def exec_many(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement for each binding tuple in ``rows``."""
        self._conn.executemany(query, rows)


class DurableObjectStorage:
    """One Durable Object's storage: SQL, key-value, transactions and an alarm.

    Each statement outside `transaction` commits on its own; inside, all commit together
    or not at all. WAL with ``synchronous=NORMAL`` survives a killed process.
    """

    def __init__(self, path: Path | str, schema: str = "", version: int = 0) -> None:
        self.path = Path(path)
        self.is_new = not self.path.exists()
        """Whether this object had no storage before (nothing to erase, nothing to recover)."""
        if self.is_new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect(schema, version)
        self.sql = SqlStorage(self._conn)
        self._depth = 0
        self._closed = False

    def _connect(self, schema: str, version: int) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise EmulatorError(f"cannot open state file {self.path}: {exc}") from exc
        try:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            has_tables = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = '_kv'").fetchone() is not None
            if has_tables and found != version:
                raise EmulatorError(
                    f"state file {self.path} has schema version {found}, but this "
                    f"workflows-emulator reads version {version}: use the emulator version "
                    "that wrote it, or point the emulator at a new state directory")
            # Small pages: a transition appends a few hundred bytes, and WAL writes whole pages.
            # The empty schema is written without fsync (a killed process loses nothing of an
            # empty file; this makes opening a new object ~5x cheaper), then every later write
            # goes through WAL with synchronous=NORMAL.
            conn.executescript(
                "PRAGMA synchronous=OFF; PRAGMA page_size=1024;"
                "CREATE TABLE IF NOT EXISTS _kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS _alarm (id INTEGER PRIMARY KEY CHECK (id = 0), "
                "at REAL NOT NULL);" + schema + f"PRAGMA user_version={int(version)};"
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            )
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise EmulatorError(
                f"cannot open state file {self.path}: {exc}. It is not a workflows-emulator "
                "state file, or it is damaged; point the emulator at another state directory"
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def in_transaction(self) -> bool:
        """Whether a `transaction` block is open."""
        return self._depth > 0

    # -- transactions -------------------------------------------------------------------

    def transaction(self) -> _Transaction:
        """Group writes: committed together when the block ends, rolled back on error.

        Nested blocks join the outer one.
        """
        return _Transaction(self)

    # -- key-value ----------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""
        row = self._conn.execute("SELECT value FROM _kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else loads(row[0])

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``."""
        self._conn.execute(
            "INSERT INTO _kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, dumps(value)),
        )

    def put_many(self, entries: Mapping[str, Any]) -> None:
        """Store several keys in one transaction."""
        with self.transaction():
            for key, value in entries.items():
                self.put(key, value)

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if it existed."""
        return self._conn.execute("DELETE FROM _kv WHERE key = ?", (key,)).rowcount > 0

    def list(self, prefix: str = "") -> dict[str, Any]:
        """All keys starting with ``prefix``, in key order."""
        rows = self._conn.execute(
            "SELECT key, value FROM _kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return {k: loads(v) for k, v in rows}

    def delete_all(self) -> None:
        """Erase every table of this object (as ``storage.deleteAll()``)."""
        with self.transaction():
            tables = [
                r[0]
                for r in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            ]
            for table in tables:
                self._conn.execute(f'DELETE FROM "{table}"')

    # -- the alarm ----------------------------------------------------------------------

    def set_alarm(self, at_ms: float) -> None:
        """Schedule this object's alarm for ``at_ms`` (epoch ms), replacing any other."""
        self._conn.execute("INSERT OR REPLACE INTO _alarm (id, at) VALUES (0, ?)", (at_ms,))

    def get_alarm(self) -> float | None:
        """The scheduled alarm time in epoch ms, or ``None``."""
        row = self._conn.execute("SELECT at FROM _alarm WHERE id = 0").fetchone()
        return None if row is None else float(row[0])

    def delete_alarm(self) -> None:
        """Cancel the alarm."""
        self._conn.execute("DELETE FROM _alarm WHERE id = 0")

    def close(self) -> None:
        """Close the database (further use raises); closing twice does nothing."""
        if not self._closed:
            self._closed = True
            self._conn.close()


class _Transaction:
    """``with storage.transaction():`` (a class: this sits on every step's hot path)."""

    __slots__ = ("_storage",)

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def __enter__(self) -> DurableObjectStorage:
        storage = self._storage
        if storage._depth == 0:
            storage._conn.execute("BEGIN")
        storage._depth += 1
        return storage

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        storage = self._storage
        storage._depth -= 1
        if storage._depth == 0:
            if exc_type is not None:
                storage._conn.execute("ROLLBACK")
                return
            hooks = _hooks
            if hooks is None:
                storage._conn.execute("COMMIT")
                return
            try:
                hooks.before_commit(storage.path)
            except BaseException:
                storage._conn.execute("ROLLBACK")
                raise
            storage._conn.execute("COMMIT")
            hooks.after_commit(storage.path)


class DurableObjectNamespace:
    """Maps object names to their storage files under one directory, never outside it."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).resolve()

    def path_for(self, name: str) -> Path:
        """The file of object ``name``; refuses names that could leave the directory."""
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            raise EmulatorError(
                f"invalid object name {name!r}: use 1-100 characters from a-z, A-Z, 0-9, "
                "'-' and '_', starting with a letter, digit or '_'"
            )
        path = (self.directory / f"{name}.sqlite").resolve()
        if path.parent != self.directory:
            raise EmulatorError(f"object name {name!r} escapes {self.directory}")
        return path

    def open(self, name: str, schema: str = "", version: int = 0) -> DurableObjectStorage:
        """Open (creating if needed) object ``name``'s storage, with ``schema`` (DDL) in it.

        ``version`` is the schema's version, kept in the file; a file of another version is
        refused with an error naming both.
        """
        return DurableObjectStorage(self.path_for(name), schema, version)

    def exists(self, name: str) -> bool:
        """Whether object ``name`` has a storage file."""
        return self.path_for(name).exists()

    def remove(self, name: str) -> None:
        """Delete object ``name``'s files."""
        path = self.path_for(name)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
