"""KV namespaces (``[[kv_namespaces]]``): the Workers KV API on one SQLite file per namespace.

`KvNamespace` is what ``env.MY_KV`` is in a Python Worker: awaitable ``get``,
``getWithMetadata``, ``put``, ``delete`` and ``list`` (camelCase as Pyodide exposes them,
with snake_case aliases), JS-shaped results as Python values (`JsDict`, lists, ``bytes``,
``None``). Expiry follows the `Clock` it is given. Validation messages are the ones
Cloudflare's runtime gives (checked against miniflare by the differential test): a
``TypeError`` where the runtime throws one, else `KvError` with the runtime's
``KV <OP> failed: <status> <reason>`` text.

The file (WAL, ``busy_timeout``) can be shared by the dev server and a CLI command at once;
every SQLite failure leaves as a `StorageError` naming the file. `SqliteFile` and
`ByteStream` are shared with the R2 binding.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..durable_object import storage_error
from ..errors import EmulatorError
from ..output_gate import open_gate
from ..workers_shim.rpc import JsDict, python_from_rpc, round_trip

MAX_KEY_BYTES = 512
MIN_EXPIRATION_TTL = 60  # seconds
MIN_CACHE_TTL = 30  # seconds
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_METADATA_BYTES = 1024
MAX_LIST_KEYS = 1000
MAX_BULK_KEYS = 100
MAX_BULK_BYTES = 25 * 1024 * 1024
BUSY_TIMEOUT_MS = 10_000
GET_TYPES = ("text", "json", "arrayBuffer", "stream")
_STREAM_CHUNK = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL,
  expiration INTEGER,   -- seconds since the epoch; NULL never expires
  metadata TEXT         -- JSON; NULL when put without metadata
);
CREATE INDEX IF NOT EXISTS entries_expiration ON entries(expiration);
"""


class KvError(EmulatorError):
    """A KV call the runtime refuses with an ``Error``; the message is the runtime's."""


class SqliteFile:
    """One SQLite file of a binding store: WAL, a busy timeout, its schema, errors wrapped.

    Args:
        path: the file (its folder is created).
        schema: ``CREATE ... IF NOT EXISTS`` statements run on open.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(schema)
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise storage_error(path, exc) from exc

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection (``RuntimeError`` after `close`)."""
        if self._conn is None:
            raise RuntimeError(f"{self.path} was closed; open the binding again")
        return self._conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for a few SELECTs."""
        conn = self.conn
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), rolled back if the body raises."""
        open_gate()  # held step results are on disk before this write
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from exc
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise storage_error(self.path, exc) from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class StreamReader:
    """``stream.getReader()``: ``await read()`` gives ``{done, value}`` until the end."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    async def read(self) -> JsDict:
        """The next chunk as ``{"done": False, "value": bytes}``, then ``{"done": True}``."""
        chunk = next(self._chunks, None)
        return JsDict(done=True, value=None) if chunk is None else JsDict(done=False, value=chunk)

    def release_lock(self) -> None:
        """Accepted (nothing to release)."""

    releaseLock = release_lock


class ByteStream:
    """A ``ReadableStream`` of bytes as the emulator hands it out (KV ``"stream"``, R2 bodies).

    Read it once: ``async for chunk in stream`` (``bytes`` chunks), ``getReader().read()``, or
    ``await stream.bytes()`` / ``text()``; a second read raises ``TypeError`` as a locked or
    disturbed stream does. The data is already in memory.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.locked = False

    def _take(self) -> Iterator[bytes]:
        if self.locked:
            raise TypeError("This ReadableStream is currently locked to a reader.")
        self.locked = True
        return (self._data[i:i + _STREAM_CHUNK] for i in range(0, len(self._data), _STREAM_CHUNK))

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate(self._take())

    @staticmethod
    async def _iterate(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    def get_reader(self) -> StreamReader:
        """A reader over the whole stream."""
        return StreamReader(self._take())

    getReader = get_reader

    async def bytes(self) -> bytes:
        """Everything, read at once."""
        return b"".join(self._take())

    async def text(self) -> str:
        """Everything, decoded as UTF-8 (bad bytes become U+FFFD, as TextDecoder does)."""
        return (await self.bytes()).decode("utf-8", errors="replace")


def _options(options: Any, kwargs: dict[str, Any], what: str) -> dict[str, Any]:
    """An options argument (a dict, a bare type string for ``get``, or None) merged with kwargs."""
    if options is None:
        merged: dict[str, Any] = {}
    elif isinstance(options, str):
        merged = {"type": options}
    elif isinstance(options, Mapping):
        merged = dict(options)
    else:
        raise TypeError(f"{what} must be a dict of options (or keyword arguments), "
                        f"not {type(options).__name__}")
    merged.update(kwargs)
    return merged


def _seconds(value: Any) -> int:
    """A number of seconds as the runtime sends it: integers; anything unparseable is 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else 0
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


def _check_key(key: Any, op: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"KV key must be a string, not {type(key).__name__}")
    if key == "":
        raise TypeError("Key name cannot be empty.")
    if key in (".", ".."):
        raise TypeError(f'"{key}" is not allowed as a key name.')
    _check_key_length(key, op)
    return key


def _check_key_length(key: str, op: str) -> None:
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise KvError(f"KV {op} failed: 414 UTF-8 encoded length of {size} exceeds key length "
                      f"limit of {MAX_KEY_BYTES}.")


def _value_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, ByteStream):
        return b"".join(value._take())
    raise TypeError("KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and "
                    "ReadableStreams as values.")


def _cursor_key(cursor: str) -> str:
    try:
        return base64.b64decode(cursor.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise KvError(f"KV GET failed: 400 Invalid cursor {cursor!r}: pass the cursor of an "
                      "earlier list() result") from None


def _decode(raw: bytes, type_: str, op: str) -> Any:
    if type_ == "arrayBuffer":
        return raw
    if type_ == "stream":
        return ByteStream(raw)
    text = raw.decode("utf-8", errors="replace")
    if type_ == "json":
        try:
            return python_from_rpc(json.loads(text))
        except json.JSONDecodeError as exc:
            if op == "GET_BULK":
                raise KvError("KV GET_BULK failed: 400 At least one of the requested keys "
                              "corresponds to a non-json value") from None
            raise ValueError(f"the value is not JSON ({exc}); read it with type 'text'") from None
    return text


class KvNamespace:
    """One KV namespace: ``env.MY_KV`` in a Python Worker.

    Args:
        path: its SQLite file (the layout gives ``<state>/kv/<id>.sqlite``).
        clock: decides what has expired and what ``expirationTtl`` means.
    """

    def __init__(self, path: Path, clock: Clock) -> None:
        self._file = SqliteFile(path, _SCHEMA)
        self._clock = clock

    def __repr__(self) -> str:
        return f"KvNamespace({str(self._file.path)!r})"

    @property
    def path(self) -> Path:
        """The namespace's SQLite file."""
        return self._file.path

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._file.close()

    def _now_s(self) -> float:
        return self._clock.now_ms() / 1000.0

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, key: str | list[str], options: Any = None, /, **kwargs: Any) -> Any:
        """The value of ``key`` or ``None``: ``get(key)``, ``get(key, "json")``,
        ``get(key, {"type": "arrayBuffer"})`` or ``get(key, type="stream")``.

        Types: ``"text"`` (``str``, the default), ``"json"`` (parsed, objects as `JsDict`),
        ``"arrayBuffer"`` (``bytes``), ``"stream"`` (a `ByteStream`). ``cacheTtl`` is
        validated (at least 30) and otherwise ignored. A list of up to 100 keys is a bulk
        get: a dict key -> value (``None`` for missing), text or json only.
        """
        opts = _options(options, kwargs, "get options")
        if isinstance(key, list):
            return await self._bulk(key, opts, with_metadata=False)
        type_ = self._type(opts)
        self._check_cache_ttl(opts, "GET")
        row = self._row(_check_key(key, "GET"))
        return None if row is None else _decode(row[0], type_, "GET")

    async def get_with_metadata(self, key: str | list[str], options: Any = None, /,
                                **kwargs: Any) -> Any:
        """``{"value", "metadata", "cacheStatus"}`` (a `JsDict`); ``value`` and ``metadata``
        are ``None`` for a missing key. A list of keys gives a dict key -> ``{value, metadata}``
        (``None`` for a missing key)."""
        opts = _options(options, kwargs, "getWithMetadata options")
        if isinstance(key, list):
            return await self._bulk(key, opts, with_metadata=True)
        type_ = self._type(opts)
        self._check_cache_ttl(opts, "GET")
        row = self._row(_check_key(key, "GET"))
        if row is None:
            return JsDict(value=None, metadata=None, cacheStatus=None)
        return JsDict(value=_decode(row[0], type_, "GET"), metadata=_metadata(row[1]),
                      cacheStatus=None)

    getWithMetadata = get_with_metadata

    @staticmethod
    def _type(opts: dict[str, Any]) -> str:
        type_ = opts.get("type", "text")
        if type_ is None:
            return "text"
        if type_ not in GET_TYPES:
            raise TypeError('Unknown response type. Possible types are "text", "arrayBuffer", '
                            '"json", and "stream".')
        return str(type_)

    @staticmethod
    def _check_cache_ttl(opts: dict[str, Any], op: str) -> None:
        ttl = opts.get("cacheTtl")
        if ttl is not None and _seconds(ttl) < MIN_CACHE_TTL:
            raise KvError(f"KV {op} failed: 400 Invalid cache_ttl of {_seconds(ttl)}. Cache TTL "
                          f"must be at least {MIN_CACHE_TTL}.")

    def _row(self, key: str) -> tuple[bytes, str | None] | None:
        with self._file.read() as conn:
            row = conn.execute(
                "SELECT value, metadata FROM entries WHERE key = ? AND "
                "(expiration IS NULL OR expiration > ?)", (key, self._now_s())).fetchone()
        return None if row is None else (bytes(row[0]), row[1])

    async def _bulk(self, keys: list[str], opts: dict[str, Any],
                    with_metadata: bool) -> dict[str, Any]:
        type_ = opts.get("type") or "text"
        if type_ not in ("text", "json"):
            raise KvError(f'KV GET_BULK failed: 400 "{type_}" is not a valid type. Use "json" '
                          'or "text"')
        if len(keys) > MAX_BULK_KEYS:
            raise KvError(f"KV GET_BULK failed: 400 You can request a maximum of "
                          f"{MAX_BULK_KEYS} keys")
        if not keys:
            raise KvError("KV GET_BULK failed: 400 You must request a minimum of 1 key")
        for key in keys:
            _check_key(key, "GET_BULK")
        self._check_cache_ttl(opts, "GET_BULK")
        out: dict[str, Any] = {}
        total = 0
        with self._file.read() as conn:
            for key in keys:
                row = conn.execute(
                    "SELECT value, metadata FROM entries WHERE key = ? AND "
                    "(expiration IS NULL OR expiration > ?)", (key, self._now_s())).fetchone()
                if row is None:
                    out[key] = None
                    continue
                total += len(row[0])
                value = _decode(bytes(row[0]), type_, "GET_BULK")
                out[key] = (JsDict(value=value, metadata=_metadata(row[1])) if with_metadata
                            else value)
        if total > MAX_BULK_BYTES:
            raise KvError(f"KV GET_BULK failed: 413 Total size of request exceeds the limit of "
                          f"{MAX_BULK_BYTES // (1024 * 1024)}MB")
        return out

    async def list(self, options: Mapping[str, Any] | None = None, /,
                   **kwargs: Any) -> JsDict:
        """``{"keys": [{"name", "expiration"?, "metadata"?}], "list_complete", "cursor"?,
        "cacheStatus"}``: keys in UTF-8 byte order, at most ``limit`` (default and maximum
        1000) per page; pass the page's ``cursor`` back for the next one."""
        opts = _options(options, kwargs, "list options")
        limit = _seconds(opts.get("limit")) if opts.get("limit") is not None else 0
        if limit > MAX_LIST_KEYS:
            raise KvError(f"KV GET failed: 400 Invalid key_count_limit of {limit}. Please specify "
                          f"an integer less than {MAX_LIST_KEYS}.")
        limit = limit if limit > 0 else MAX_LIST_KEYS  # the runtime sends only a positive limit
        prefix = opts.get("prefix") or ""
        if not isinstance(prefix, str):
            raise TypeError(f"list prefix must be a string, not {type(prefix).__name__}")
        _check_key_length(prefix, "GET")
        cursor = opts.get("cursor")
        after = _cursor_key(cursor) if cursor else ""
        with self._file.read() as conn:
            rows = conn.execute(
                "SELECT key, expiration, metadata FROM entries "
                "WHERE substr(key, 1, length(:prefix)) = :prefix AND key > :after "
                "AND (expiration IS NULL OR expiration > :now) ORDER BY key LIMIT :limit",
                {"prefix": prefix, "after": after, "now": self._now_s(),
                 "limit": limit + 1}).fetchall()
        more = len(rows) > limit
        keys = []
        for name, expiration, metadata in rows[:limit]:
            entry = JsDict(name=name)
            if expiration is not None:
                entry["expiration"] = expiration
            if metadata is not None:
                entry["metadata"] = _metadata(metadata)
            keys.append(entry)
        # As the Python SDK returns it: a JsDict, so ``page["keys"]`` (``page.keys`` is the dict
        # method there too).
        result = JsDict(keys=keys, list_complete=not more)
        if more:
            result["cursor"] = base64.b64encode(rows[limit - 1][0].encode("utf-8")).decode("ascii")
        result["cacheStatus"] = None
        return result

    # -- writes ---------------------------------------------------------------------------------

    async def put(self, key: str, value: Any, options: Mapping[str, Any] | None = None, /,
                  **kwargs: Any) -> None:
        """Store ``value`` (``str``, ``bytes`` or a `ByteStream`) under ``key``.

        Options: ``expiration`` (seconds since the epoch, at least 60 s ahead),
        ``expirationTtl`` (seconds, at least 60; wins over ``expiration``), ``metadata``
        (any JSON value, at most 1024 bytes serialised).
        """
        opts = _options(options, kwargs, "put options")
        _check_key(key, "PUT")
        raw = _value_bytes(value)
        now = int(self._now_s())
        expiration = self._expiration(opts, now)
        metadata = None
        if opts.get("metadata") is not None:
            metadata = json.dumps(round_trip(opts["metadata"], "KV metadata"),
                                  separators=(",", ":"), ensure_ascii=False)
            size = len(metadata.encode("utf-8"))
            if size > MAX_METADATA_BYTES:
                raise KvError(f"KV PUT failed: 413 Metadata length of {size} exceeds limit of "
                              f"{MAX_METADATA_BYTES}.")
        if len(raw) > MAX_VALUE_BYTES:
            raise KvError(f"KV PUT failed: 413 Value length of {len(raw)} exceeds limit of "
                          f"{MAX_VALUE_BYTES}.")
        with self._file.write() as conn:
            conn.execute("DELETE FROM entries WHERE expiration <= ?", (self._now_s(),))
            conn.execute("INSERT OR REPLACE INTO entries (key, value, expiration, metadata) "
                         "VALUES (?, ?, ?, ?)", (key, raw, expiration, metadata))

    @staticmethod
    def _expiration(opts: dict[str, Any], now: int) -> int | None:
        if opts.get("expirationTtl") is not None:
            ttl = _seconds(opts["expirationTtl"])
            if ttl <= 0:
                raise KvError(f"KV PUT failed: 400 Invalid expiration_ttl of {ttl}. Please "
                              "specify integer greater than 0.")
            if ttl < MIN_EXPIRATION_TTL:
                raise KvError(f"KV PUT failed: 400 Invalid expiration_ttl of {ttl}. Expiration "
                              f"TTL must be at least {MIN_EXPIRATION_TTL}.")
            return now + ttl
        if opts.get("expiration") is not None:
            at = _seconds(opts["expiration"])
            if at <= now:
                raise KvError(f"KV PUT failed: 400 Invalid expiration of {at}. Please specify "
                              "integer greater than the current number of seconds since the "
                              "UNIX epoch.")
            if at < now + MIN_EXPIRATION_TTL:
                raise KvError(f"KV PUT failed: 400 Invalid expiration of {at}. Expiration times "
                              f"must be at least {MIN_EXPIRATION_TTL} seconds in the future.")
            return at
        return None

    async def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens if it is missing)."""
        _check_key(key, "DELETE")
        with self._file.write() as conn:
            conn.execute("DELETE FROM entries WHERE key = ?", (key,))


def _metadata(text: str | None) -> Any:
    return None if text is None else python_from_rpc(json.loads(text))
