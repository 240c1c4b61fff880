"""D1 databases (``[[d1_databases]]``): ``env.DB`` as a Python Worker sees it, on a plain SQLite file.

The file (``<state>/d1/<database_id>.sqlite``) is the user's database and nothing else: any
``sqlite3`` can open it. `D1Database` gives the binding's API (``prepare`` / ``bind`` /
``first`` / ``all`` / ``run`` / ``raw``, ``batch``, ``exec``) with the result shapes, meta
fields and error messages of wrangler's local runtime (miniflare). Every call runs in one
SQLite transaction, so a failing ``batch`` or ``exec`` leaves nothing behind.

Values cross as they do on Cloudflare, where a JS number is a double: numbers (and booleans)
are bound as SQLite REAL, integral results come back as ``int``, BLOBs as lists of byte values.

`apply_migrations` applies ``migrations_dir`` the way ``wrangler d1 migrations apply`` does,
recording each file in wrangler's ``d1_migrations`` table.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StorageError
from ..output_gate import open_gate
from ..workers_shim.rpc import JsDict
from .sql_params import sqlite_params

MAX_SAFE_INTEGER = 2**53 - 1  # beyond it a JS number is not exact (and Pyodide sends a BigInt)
SERVED_BY = "workflows-emulator.db"
BUSY_TIMEOUT_MS = 5000
MIGRATIONS_TABLE = "d1_migrations"
NO_STATEMENTS = "No SQL statements detected."
EMPTY_STATEMENT = "SQL code did not contain a statement."
WRONG_BINDINGS = "Wrong number of parameter bindings for SQL query."
ONLY_LAST_BINDS = ("When executing multiple SQL statements in a single call, only the last "
                   "statement can have parameters.")
TRANSACTION_REFUSED = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing.")

# SQLite's primary result codes by number (an extended code's low byte is its primary code).
_PRIMARY_CODES = {
    1: "SQLITE_ERROR", 2: "SQLITE_INTERNAL", 3: "SQLITE_PERM", 4: "SQLITE_ABORT",
    5: "SQLITE_BUSY", 6: "SQLITE_LOCKED", 7: "SQLITE_NOMEM", 8: "SQLITE_READONLY",
    9: "SQLITE_INTERRUPT", 10: "SQLITE_IOERR", 11: "SQLITE_CORRUPT", 12: "SQLITE_NOTFOUND",
    13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN", 15: "SQLITE_PROTOCOL", 16: "SQLITE_EMPTY",
    17: "SQLITE_SCHEMA", 18: "SQLITE_TOOBIG", 19: "SQLITE_CONSTRAINT", 20: "SQLITE_MISMATCH",
    21: "SQLITE_MISUSE", 22: "SQLITE_NOLFS", 23: "SQLITE_AUTH", 24: "SQLITE_FORMAT",
    25: "SQLITE_RANGE", 26: "SQLITE_NOTADB",
}
# Failures of the disk or the file rather than of the user's SQL.
_STORAGE_CODES = {"SQLITE_FULL": ("the disk is full", "free some space and retry"),
                  "SQLITE_IOERR": ("a disk I/O error", "check the disk"),
                  "SQLITE_CORRUPT": ("the database file is damaged",
                                     "restore it from a copy or delete it"),
                  "SQLITE_NOTADB": ("the file is not a SQLite database",
                                    "move it away or point --persist-to elsewhere"),
                  "SQLITE_CANTOPEN": ("cannot open the database file",
                                      "check the folder exists and is writable"),
                  "SQLITE_READONLY": ("the database file is read-only",
                                      "make the state directory writable"),
                  "SQLITE_PERM": ("permission denied", "make the state directory writable"),
                  "SQLITE_BUSY": ("the database stayed locked by another connection",
                                  "retry once the other process's write has finished")}
_TRANSACTION_WORDS = {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"}
# Strings and quoted names are kept; comments are matched so they can be dropped.
_LEXEMES = re.compile(r"""'(?:[^']|'')*'?|"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?"""
                      r"""|(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))""", re.DOTALL)
_COMMENT_LINES = re.compile(r"^\s*--.*", re.MULTILINE)
_FIRST_WORD = re.compile(r"[A-Za-z]+")


class D1Error(Exception):
    """A D1 call failed; the message is D1's (``D1_ERROR: no such table: x: SQLITE_ERROR``)."""


class D1MigrationError(D1Error):
    """A migration could not be applied.

    Attributes:
        migration: the file that failed (None when none could be tried).
        applied: the files applied before it, in order (they stay applied).
    """

    def __init__(self, message: str, migration: str | None = None,
                 applied: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.migration = migration
        self.applied = list(applied)


class _Failed(Exception):
    """One query failed; ``str()`` is D1's text without its ``D1_ERROR: `` prefix."""


@dataclass
class _Outcome:
    columns: list[str]
    rows: list[list[Any]]
    meta: JsDict

    def objects(self) -> list[JsDict]:
        return [JsDict(zip(self.columns, row, strict=True)) for row in self.rows]

    def result(self) -> JsDict:
        """``{success, meta, results}`` with rows as objects, as ``all()`` returns it."""
        return JsDict(success=True, meta=self.meta, results=self.objects())


class D1PreparedStatement:
    """A statement of `D1Database.prepare`, with the values `bind` gave it.

    Attributes:
        statement: the SQL text.
        params: the bound values, as they are sent to SQLite.
    """

    def __init__(self, database: D1Database, statement: str,
                 params: Sequence[Any] = ()) -> None:
        self._db = database
        self.statement = statement
        self.params: list[Any] = list(params)

    def __repr__(self) -> str:
        return f"D1PreparedStatement({self.statement!r}, params={self.params!r})"

    def bind(self, *values: Any) -> D1PreparedStatement:
        """A new statement with ``values`` bound to its ``?`` / ``?NNN`` parameters.

        Raises:
            D1Error: ``D1_TYPE_ERROR`` for a value D1 cannot bind (only None, bool, int,
                float, str and bytes-like values can be bound).
        """
        return D1PreparedStatement(self._db, self.statement, [bind_value(v) for v in values])

    async def first(self, column: str | None = None) -> Any:
        """The first row as an object, or only its ``column``; None when there is no row.

        Raises:
            D1Error: ``D1_COLUMN_NOTFOUND`` when the row has no such column; D1_ERROR as `all`.
        """
        outcome = self._db._one(self)
        if not outcome.rows:
            return None
        row = outcome.objects()[0]
        if column is None:
            return row
        if column not in row:
            raise D1Error(f"D1_COLUMN_NOTFOUND: Column not found ({column})")
        return row[column]

    async def all(self) -> JsDict:
        """``{"success": True, "meta": {...}, "results": [rows as objects]}``."""
        return self._db._one(self).result()

    async def run(self) -> JsDict:
        """As `all` (current D1 returns ``results`` from ``run()`` too)."""
        return self._db._one(self).result()

    async def raw(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> list[Any]:
        """The rows as lists; ``raw(columnNames=True)`` (or ``column_names=True``) puts the
        column names first, even when there is no row."""
        opts = {**(options or {}), **kwargs}
        unknown = set(opts) - {"columnNames", "column_names"}
        if unknown:
            raise TypeError(f"raw() got unknown option(s) {sorted(unknown)}: use columnNames")
        outcome = self._db._one(self)
        header = [list(outcome.columns)] if opts.get("columnNames", opts.get("column_names")) else []
        return header + [list(row) for row in outcome.rows]


class D1Database:
    """One D1 database on its own SQLite file (created on first use, WAL mode).

    Several `D1Database` objects, in this process or others (the dev server and a CLI
    command), can use one file at once: each call is one SQLite transaction.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._guarded = True  # the authorizer refuses transactions and ATTACH in user SQL
        self._refusal: str | None = None
        self._closed = False
        self._conn = self._open()

    def __repr__(self) -> str:
        return f"D1Database({str(self.path)!r})"

    def __enter__(self) -> D1Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._closed = True
            self._conn.close()

    # -- the binding's API -------------------------------------------------------------------

    def prepare(self, query: str) -> D1PreparedStatement:
        """A statement to bind and run (nothing runs yet)."""
        if not isinstance(query, str):
            raise TypeError(f"prepare() takes the SQL text as a str, not {type(query).__name__}")
        return D1PreparedStatement(self, query)

    async def batch(self, statements: Sequence[D1PreparedStatement]) -> list[JsDict]:
        """Run ``statements`` in one transaction: all of them, or (on an error) none.

        Raises:
            D1Error: ``D1_ERROR: <SQLite's message>`` from the first failing statement.
        """
        for stmt in statements:
            if not isinstance(stmt, D1PreparedStatement):
                raise TypeError("batch() takes a list of prepared statements (db.prepare(...))")
        try:
            outcomes = self._transaction([(s.statement, s.params) for s in statements])
        except _Failed as exc:
            raise D1Error(f"D1_ERROR: {exc}") from None
        return [o.result() for o in outcomes]

    async def exec(self, query: str) -> JsDict:
        """Run the SQL ``query`` line by line (each line one or more statements, no bindings)
        in one transaction; ``{"count": lines run, "duration": ms}``.

        Raises:
            D1Error: ``D1_EXEC_ERROR: Error in line 1: <first line>: <SQLite's message>``
                (D1 names the first line whichever failed; nothing is kept).
        """
        if not isinstance(query, str):
            raise TypeError(f"exec() takes the SQL text as a str, not {type(query).__name__}")
        lines = query.strip().split("\n")
        try:
            outcomes = self._transaction([(line, []) for line in lines])
        except _Failed as exc:
            raise D1Error(f"D1_EXEC_ERROR: Error in line 1: {lines[0]}: {exc}") from None
        return JsDict(count=len(outcomes), duration=sum(o.meta["duration"] for o in outcomes))

    # -- running SQL ---------------------------------------------------------------------------

    def _one(self, stmt: D1PreparedStatement) -> _Outcome:
        try:
            return self._transaction([(stmt.statement, stmt.params)])[0]
        except _Failed as exc:
            raise D1Error(f"D1_ERROR: {exc}") from None

    def _transaction(self, queries: list[tuple[str, list[Any]]]) -> list[_Outcome]:
        """Run ``queries`` (comment-only ones dropped, as D1 does) in one transaction."""
        queries = [q for q in queries if _COMMENT_LINES.sub("", q[0]).strip()]
        if not queries:
            raise _Failed(NO_STATEMENTS)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            try:
                with self._unguarded():
                    self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._storage_error(exc) from exc
            try:
                outcomes = [self._query(sql, params) for sql, params in queries]
            except BaseException:
                self._rollback()
                raise
            try:
                with self._unguarded():
                    self._conn.commit()
            except sqlite3.Error as exc:
                self._rollback()
                raise self._storage_error(exc) from exc
            return outcomes

    def _rollback(self) -> None:
        """Undo the open transaction; a failure here never hides the error that led to it."""
        with self._unguarded(), suppress(sqlite3.Error):
            self._conn.rollback()

    def _query(self, sql: str, params: list[Any]) -> _Outcome:
        started = time.perf_counter()
        changes_before = self._conn.total_changes
        row_id_before, size_before = self._position()
        statements = split_statements(sql)
        cursor: sqlite3.Cursor | None = None
        rows: list[Any] = []
        for index, text in enumerate(statements):
            last = index == len(statements) - 1
            cursor, rows = self._execute(text, params if last else [], last)
        assert cursor is not None
        duration = (time.perf_counter() - started) * 1000
        changes = self._conn.total_changes - changes_before
        row_id, size = self._position()
        columns = [d[0] for d in cursor.description or ()]
        read, written = _rows_counted(statements[-1], cursor, len(rows))
        meta = JsDict(
            served_by=SERVED_BY, served_by_primary=True, total_attempts=1,
            timings=JsDict(sql_duration_ms=duration), duration=duration, changes=changes,
            last_row_id=row_id,
            changed_db=changes != 0 or row_id != row_id_before or size != size_before,
            size_after=size, rows_read=read, rows_written=written)
        return _Outcome(columns, [[js_value(v) for v in row] for row in rows], meta)

    def _execute(self, text: str, params: list[Any],
                 last: bool) -> tuple[sqlite3.Cursor, list[Any]]:
        word = first_word(text)
        if word in _TRANSACTION_WORDS:
            raise _Failed(TRANSACTION_REFUSED)
        open_gate()  # held step results are on disk before this statement
        self._refusal = None
        try:
            with warnings.catch_warnings():
                # D1 binds :name / @name / $name parameters by position, as here.
                warnings.simplefilter("ignore", DeprecationWarning)
                cursor = self._conn.execute(text, sqlite_params(text, params))
            return cursor, cursor.fetchall()
        except sqlite3.ProgrammingError as exc:
            if "number of bindings" in str(exc):
                raise _Failed(WRONG_BINDINGS if last else ONLY_LAST_BINDS) from None
            raise _Failed(str(exc)) from None
        except sqlite3.Error as exc:
            raise self._failure(exc, text) from None

    def _position(self) -> tuple[int, int]:
        """``last_insert_rowid()`` and the database's size in bytes."""
        try:
            row = self._conn.execute(
                "SELECT last_insert_rowid(), page_count * page_size "
                "FROM pragma_page_count(), pragma_page_size()").fetchone()
        except sqlite3.Error as exc:
            raise self._storage_error(exc) from exc
        return int(row[0]), int(row[1])

    def _failure(self, exc: sqlite3.Error, sql: str) -> Exception:
        """A failed user statement: D1's message, or a `StorageError` if the disk failed."""
        name = str(getattr(exc, "sqlite_errorname", "") or "")
        if any(name.startswith(code) for code in _STORAGE_CODES):
            return self._storage_error(exc)
        if self._refusal is not None:
            return _Failed(self._refusal)
        code = getattr(exc, "sqlite_errorcode", None)
        primary = _PRIMARY_CODES.get(code & 0xFF, name) if isinstance(code, int) else name
        offset = error_offset(self.path, sql, str(exc))
        text = str(exc) if offset is None else f"{exc} at offset {offset}"
        text = f"{text}: {primary}" if primary else text
        if name and name != primary:
            text += f" (extended: {name})"
        return _Failed(text)

    def _storage_error(self, exc: BaseException) -> StorageError:
        name = str(getattr(exc, "sqlite_errorname", "") or "")
        for code, (cause, advice) in _STORAGE_CODES.items():
            if name.startswith(code):
                return StorageError(self.path, f"D1 database: {cause} ({exc})", advice)
        return StorageError(self.path, f"D1 database: SQLite failed ({exc})")

    # -- the connection ------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(self.path, f"cannot create the D1 folder ({exc.strerror})",
                               "make the state directory writable") from exc
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise self._storage_error(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")  # D1 enforces foreign keys
        except sqlite3.Error as exc:
            conn.close()
            raise self._storage_error(exc) from exc
        conn.set_authorizer(self._authorize)
        return conn

    def _authorize(self, action: int, arg1: str | None, arg2: str | None,
                   _db: str | None, _trigger: str | None) -> int:
        """Refuse in user SQL what D1 refuses: transactions, ATTACH/DETACH, ``_cf_`` tables."""
        if not self._guarded:
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            self._refusal = TRANSACTION_REFUSED
            return sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return sqlite3.SQLITE_DENY
        for name in (arg1, arg2):
            if name is not None and name.startswith("_cf_"):
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    @contextmanager
    def _unguarded(self) -> Iterator[None]:
        self._guarded = False
        try:
            yield
        finally:
            self._guarded = True


# -- values --------------------------------------------------------------------------------------


def bind_value(value: Any) -> Any:
    """``value`` as D1 binds it: a number becomes a REAL (a JS number is a double), a bool 1/0.

    Raises:
        D1Error: ``D1_TYPE_ERROR: Type '<js type>' not supported for value '<value>'``.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:  # Pyodide sends it as a BigInt, which D1 refuses
            raise D1Error(f"D1_TYPE_ERROR: Type 'bigint' not supported for value '{value}'")
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    kind = "function" if callable(value) else "object"
    raise D1Error(f"D1_TYPE_ERROR: Type '{kind}' not supported for value '{value}'")


def js_value(value: Any) -> Any:
    """A SQLite value as a Python Worker receives it from D1 (through a JS number/array)."""
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # D1 answers in JSON, which has no NaN or Infinity
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        return float(value)
    return value


# -- error offsets -------------------------------------------------------------------------------


class _Sqlite:
    """The SQLite library Python's ``sqlite3`` uses, through ctypes, for the one thing the
    module does not expose: ``sqlite3_error_offset`` (D1 shows it in its messages)."""

    def __init__(self) -> None:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)  # resolves the library it links to
        handle, stmt = ctypes.c_void_p, ctypes.c_void_p
        self.open = lib.sqlite3_open_v2
        self.open.argtypes = [ctypes.c_char_p, ctypes.POINTER(handle), ctypes.c_int,
                              ctypes.c_char_p]
        self.prepare = lib.sqlite3_prepare_v2
        self.prepare.argtypes = [handle, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.POINTER(stmt), ctypes.POINTER(ctypes.c_char_p)]
        self.errmsg = lib.sqlite3_errmsg
        self.errmsg.argtypes, self.errmsg.restype = [handle], ctypes.c_char_p
        self.offset = lib.sqlite3_error_offset
        self.offset.argtypes, self.offset.restype = [handle], ctypes.c_int
        self.finalize = lib.sqlite3_finalize
        self.finalize.argtypes = [stmt]
        self.close = lib.sqlite3_close_v2
        self.close.argtypes = [handle]


@functools.cache
def _sqlite() -> _Sqlite | None:
    try:
        return _Sqlite()
    except (ImportError, OSError, AttributeError):  # no such library or an older SQLite
        return None


def error_offsets_available() -> bool:
    """Whether `error_offset` can find offsets (SQLite 3.38+, reachable through ctypes)."""
    return _sqlite() is not None


def error_offset(path: Path, sql: str, message: str) -> int | None:
    """Where in ``sql`` SQLite places the error ``message`` (a UTF-8 byte offset), as workerd
    reports it; None when SQLite gives none or it cannot be found.

    SQLite compiles ``sql`` again on a read-only connection of its own: only an error it
    reproduces with the same message counts (a table created earlier in the same
    transaction is not visible there, for example).
    """
    lib = _sqlite()
    if lib is None:
        return None
    encoded = sql.encode("utf-8", "surrogatepass")
    db, stmt = ctypes.c_void_p(), ctypes.c_void_p()
    try:
        if lib.open(os.fsencode(path), ctypes.byref(db), 0x1, None) != 0:  # READONLY
            return None
        if lib.prepare(db, encoded, len(encoded), ctypes.byref(stmt), None) == 0:
            return None
        if (lib.errmsg(db) or b"").decode("utf-8", "replace") != message:
            return None
        offset = int(lib.offset(db))
    finally:
        if stmt.value:
            lib.finalize(stmt)
        if db.value:
            lib.close(db)
    return offset if offset >= 0 else None  # in bytes of UTF-8, as workerd reports it


# -- SQL text --------------------------------------------------------------------------------------


def strip_comments(sql: str) -> str:
    """``sql`` without its ``--`` and ``/* */`` comments (strings and quoted names kept)."""
    return _LEXEMES.sub(lambda m: " " if m.group("comment") else m.group(0), sql)


def first_word(sql: str) -> str:
    """The statement's first keyword, upper-cased ("" if none)."""
    match = _FIRST_WORD.match(strip_comments(sql).lstrip())
    return match.group(0).upper() if match else ""


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql``, split where SQLite would end each one.

    Raises:
        _Failed: an empty statement (only comments or a lone ``;``) before the end.
    """
    if ";" not in sql:
        if not strip_comments(sql).strip():
            raise _Failed(EMPTY_STATEMENT)
        return [sql]
    out: list[str] = []
    rest = sql
    while True:
        if out:
            rest = rest.lstrip()
        if out and not rest:
            return out
        end = _statement_end(rest)
        chunk, rest = rest[:end], rest[end:]
        if not strip_comments(chunk).replace(";", " ").strip():
            raise _Failed(EMPTY_STATEMENT)
        out.append(chunk)
        if not rest:
            return out


def _statement_end(sql: str) -> int:
    index = sql.find(";")
    while index != -1:
        if sqlite3.complete_statement(sql[: index + 1]):
            return index + 1
        index = sql.find(";", index + 1)
    return len(sql)


def _rows_counted(sql: str, cursor: sqlite3.Cursor, returned: int) -> tuple[int, int]:
    """``(rows_read, rows_written)`` of a statement, as D1 counts them in the simple cases.

    SQLite does not tell Python how many rows a statement visited, so: an INSERT writes the
    rows it adds, an UPDATE or DELETE reads and writes the rows it changes, anything else
    reads the rows it returns. Scans, index writes and schema changes are not counted.
    """
    changed = max(cursor.rowcount, 0)
    word = first_word(sql)
    if word in ("INSERT", "REPLACE"):
        return 0, changed
    if word in ("UPDATE", "DELETE"):
        return changed, changed
    return returned, 0


# -- migrations ------------------------------------------------------------------------------------


def migration_names(migrations_dir: Path) -> list[str]:
    """The ``*.sql`` files of ``migrations_dir`` in wrangler's order (by leading number).

    Raises:
        D1MigrationError: the folder does not exist.
    """
    folder = Path(migrations_dir)
    if not folder.is_dir():
        raise D1MigrationError(f"No migrations present at {folder}. Create the folder, or set "
                               "migrations_dir in the [[d1_databases]] entry to yours")
    names = [p.name for p in folder.iterdir() if p.suffix == ".sql" and p.is_file()]
    return sorted(names, key=_migration_order)


def _migration_order(name: str) -> tuple[int, int, str]:
    number = re.match(r"[+-]?\d+", name.split("_")[0])
    return (0, int(number.group(0)), name) if number else (1, 0, name)


def applied_migrations(db: D1Database) -> list[str]:
    """The names recorded in ``d1_migrations`` (created if missing), in order."""
    db._transaction([(_CREATE_MIGRATIONS_TABLE, [])])
    outcome = db._transaction([(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY id", [])])[0]
    return [str(row[0]) for row in outcome.rows]


_CREATE_MIGRATIONS_TABLE = f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}(
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT UNIQUE,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);"""


def list_unapplied(db_path: Path, migrations_dir: Path) -> list[str]:
    """The migration files of ``migrations_dir`` not yet recorded in the database."""
    with D1Database(db_path) as db:
        done = set(applied_migrations(db))
    return [name for name in migration_names(migrations_dir) if name not in done]


def apply_migration(db: D1Database, migrations_dir: Path, name: str) -> None:
    """Run one migration file and record it, in one transaction (as wrangler does).

    Raises:
        D1MigrationError: the file's SQL failed (nothing of it is kept).
    """
    file = Path(migrations_dir) / name
    try:
        sql = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise D1MigrationError(f"Migration {name} cannot be read ({exc}); fix {file}",
                               name) from exc
    quoted = name.replace("'", "''")
    record = f"INSERT INTO {MIGRATIONS_TABLE} (name) values ('{quoted}');"
    try:
        db._transaction([(s, []) for s in [*script_statements(sql), record]])
    except _Failed as exc:
        raise D1MigrationError(f"Migration {name} failed: {exc}", name) from None


def script_statements(sql: str) -> list[str]:
    """A SQL script's statements, each to run as one statement of a batch (as wrangler's
    ``d1 execute --file`` and ``d1 migrations apply`` do); comment-only ones are dropped,
    and the ``BEGIN TRANSACTION;`` / ``COMMIT;`` around a ``.dump`` file removed."""
    rest = sql.strip()
    out = []
    while rest:
        end = _statement_end(rest)
        if strip_comments(rest[:end]).strip(" \t\r\n;"):
            out.append(rest[:end])
        rest = rest[end:].strip()
    # Whole statements only: the same words inside a string literal are data.
    bare = [_bare(s) for s in out]
    if "BEGIN TRANSACTION" in bare and "COMMIT" in bare:
        begin, commit = bare.index("BEGIN TRANSACTION"), len(bare) - 1 - bare[::-1].index("COMMIT")
        if begin < commit:
            out = [s for i, s in enumerate(out) if i not in (begin, commit)]
    return out


def _bare(statement: str) -> str:
    return strip_comments(statement).strip(" \t\r\n;").upper()


def apply_migrations(db_path: Path, migrations_dir: Path,
                     on_applied: Callable[[str], None] | None = None) -> list[str]:
    """Apply, in order, the migrations of ``migrations_dir`` not yet applied; their names.

    Each file runs in its own transaction; a failing one stops the run, leaving the ones
    before it applied and itself unrecorded. ``on_applied(name)`` is told of each success.

    Raises:
        D1MigrationError: a migration failed (``applied`` lists those applied before it),
            or ``migrations_dir`` does not exist.
    """
    applied: list[str] = []
    with D1Database(db_path) as db:
        done = set(applied_migrations(db))
        for name in migration_names(migrations_dir):
            if name in done:
                continue
            try:
                apply_migration(db, migrations_dir, name)
            except D1MigrationError as exc:
                exc.applied = list(applied)
                raise
            applied.append(name)
            if on_applied is not None:
                on_applied(name)
    return applied
