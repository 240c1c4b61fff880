"""R2 buckets (``[[r2_buckets]]``): the Workers R2 API on a folder per bucket.

`R2Bucket` is what ``env.MY_BUCKET`` is in a Python Worker: awaitable ``put``, ``get``,
``head``, ``delete`` and ``list``; objects come back as `R2Object` / `R2ObjectBody` with
the JS property names (``httpEtag``, ``httpMetadata``, ...) plus snake_case aliases.
``uploaded`` and ``httpMetadata.cacheExpiry`` are timezone-aware ``datetime`` objects in
UTC (a Python Worker on Cloudflare sees a JS ``Date`` proxy there).

Layout: ``<root>/objects.sqlite`` holds each object's metadata and the name of its body
file in ``<root>/blobs/``. A body is written to a temporary file, fsynced and renamed
before the row that names it commits, so a crash never leaves a row pointing at a half
body (at worst an unreferenced body file stays behind). A replaced or deleted body file is
removed after its row is gone.

Errors: the runtime's ``TypeError``/``RangeError`` become ``TypeError``/``ValueError``;
R2's own refusals are `R2Error` with the runtime's ``<method>: <message> (<code>)`` text.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..durable_object import storage_error
from ..errors import EmulatorError
from ..workers_shim.rpc import JsDict, python_from_rpc
from .kv import ByteStream, SqliteFile

MAX_KEY_BYTES = 1024
MAX_LIST_KEYS = 1000
MAX_LIST_KEYS_WITH_METADATA = 100
MAX_CUSTOM_METADATA = 8192  # R2's current limit, as miniflare 5 checks it
MAX_VALUE_BYTES = 5_368_709_120 - 5_242_880  # 5 GiB - 5 MiB
HTTP_FIELDS = ("contentType", "contentLanguage", "contentDisposition", "contentEncoding",
               "cacheControl", "cacheExpiry")
_HEADERS = {"contentType": "Content-Type", "contentLanguage": "Content-Language",
            "contentDisposition": "Content-Disposition", "contentEncoding": "Content-Encoding",
            "cacheControl": "Cache-Control", "cacheExpiry": "Expires"}
_HASHES = (("md5", "MD5", 32), ("sha1", "SHA-1", 40), ("sha256", "SHA-256", 64),
           ("sha384", "SHA-384", 96), ("sha512", "SHA-512", 128))
_INCLUDE = ("httpMetadata", "customMetadata")
_SCAN_BATCH = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
  key TEXT PRIMARY KEY,
  blob TEXT NOT NULL,          -- the body's file name in blobs/
  version TEXT NOT NULL,
  size INTEGER NOT NULL,
  etag TEXT NOT NULL,          -- hex MD5 of the body
  uploaded INTEGER NOT NULL,   -- ms since the epoch, from the bucket's clock
  checksums TEXT NOT NULL,     -- JSON {algorithm: hex} besides md5
  http_metadata TEXT NOT NULL, -- JSON, cacheExpiry in ms
  custom_metadata TEXT NOT NULL
);
"""


class R2Error(EmulatorError):
    """An R2 call the service refuses; the message is ``<method>: <reason> (<code>)``.

    Attributes:
        code: R2's numeric error code (10020 invalid key, 10039 bad range, ...).
    """

    def __init__(self, method: str, message: str, code: int) -> None:
        self.code = code
        super().__init__(f"{method}: {message} ({code})")


def _invalid_key(method: str) -> R2Error:
    return R2Error(method, "The specified object name is not valid.", 10020)


def _bad_range(method: str) -> R2Error:
    return R2Error(method, "The requested range is not satisfiable", 10039)


class R2Checksums:
    """``object.checksums``: each algorithm's digest as ``bytes`` (or None); `toJSON` gives hex."""

    def __init__(self, hexes: Mapping[str, str]) -> None:
        self._hexes = dict(hexes)
        for field, _, _ in _HASHES:
            value = self._hexes.get(field)
            setattr(self, field, None if value is None else bytes.fromhex(value))

    def __repr__(self) -> str:
        return f"R2Checksums({self._hexes!r})"

    def to_json(self) -> JsDict:
        """The digests present, as lowercase hex strings."""
        return JsDict(self._hexes)

    toJSON = to_json


class R2Object:
    """An object's metadata, as ``head``, ``put`` and ``list`` give it.

    Attributes (JS names; snake_case aliases as properties): ``key``, ``version``, ``size``,
    ``etag``, ``httpEtag`` (quoted), ``uploaded`` (UTC ``datetime``), ``httpMetadata`` (a
    `JsDict` with the six HTTP fields, None when unset), ``customMetadata`` (a `JsDict`),
    ``checksums`` (`R2Checksums`), ``range`` (``{offset, length, suffix}`` for get/head,
    None from put and list), ``storageClass`` (``"Standard"``).
    """

    def __init__(self, row: Mapping[str, Any], range_: JsDict | None = None) -> None:
        self.key: str = row["key"]
        self.version: str = row["version"]
        self.size: int = row["size"]
        self.etag: str = row["etag"]
        self.httpEtag = f'"{self.etag}"'
        self.uploaded = datetime.fromtimestamp(row["uploaded"] / 1000, UTC)
        self.httpMetadata = _http_out(json.loads(row["http_metadata"]))
        self.customMetadata = JsDict(json.loads(row["custom_metadata"]))
        self.checksums = R2Checksums({"md5": self.etag, **json.loads(row["checksums"])})
        self.range = range_
        self.storageClass = "Standard"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, size={self.size}, etag={self.etag!r})"

    @property
    def http_etag(self) -> str:
        return self.httpEtag

    @property
    def http_metadata(self) -> JsDict:
        return self.httpMetadata

    @property
    def custom_metadata(self) -> JsDict:
        return self.customMetadata

    @property
    def storage_class(self) -> str:
        return self.storageClass

    def write_http_metadata(self, headers: Any) -> None:
        """Set the object's HTTP fields as headers on ``headers`` (a dict or anything with
        ``set(name, value)``); ``cacheExpiry`` becomes an ``Expires`` date."""
        for field, header in _HEADERS.items():
            value = self.httpMetadata.get(field)
            if value is None:
                continue
            text = (value.strftime("%a, %d %b %Y %H:%M:%S GMT") if isinstance(value, datetime)
                    else str(value))
            if isinstance(headers, MutableMapping):
                headers[header] = text
            else:
                headers.set(header, text)

    writeHttpMetadata = write_http_metadata


class R2ObjectBody(R2Object):
    """An object with its body (``get``): ``text()``, ``json()``, ``arrayBuffer()``,
    ``bytes()``, ``blob()`` or the ``body`` stream; the body can be read once (``bodyUsed``)."""

    def __init__(self, row: Mapping[str, Any], range_: JsDict, data: bytes) -> None:
        super().__init__(row, range_)
        self.body = ByteStream(data)

    @property
    def bodyUsed(self) -> bool:
        return self.body.locked

    body_used = bodyUsed

    async def array_buffer(self) -> bytes:
        """The body as ``bytes``."""
        return await self.body.bytes()

    arrayBuffer = array_buffer
    bytes = array_buffer
    blob = array_buffer

    async def text(self) -> str:
        """The body decoded as UTF-8."""
        return await self.body.text()

    async def json(self) -> Any:
        """The body parsed as JSON (objects as `JsDict`)."""
        return python_from_rpc(json.loads(await self.body.text()))


def _http_out(stored: Mapping[str, Any]) -> JsDict:
    out = JsDict({field: stored.get(field) for field in HTTP_FIELDS})
    if out["cacheExpiry"] is not None:
        out["cacheExpiry"] = datetime.fromtimestamp(out["cacheExpiry"] / 1000, UTC)
    return out


def _http_in(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError("httpMetadata must be a dict such as {'contentType': 'text/plain'}")
    out: dict[str, Any] = {}
    for field in HTTP_FIELDS:  # other keys are ignored, as the runtime does
        item = value.get(field)
        if item is None:
            continue
        if field == "cacheExpiry":
            out[field] = _epoch_ms(item, "httpMetadata.cacheExpiry")
        else:
            out[field] = _js_string(item)
    return out


def _epoch_ms(value: Any, what: str) -> int:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{what} must be a datetime (or epoch milliseconds), not "
                    f"{type(value).__name__}")


def _js_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _custom_in(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError("customMetadata must be a dict of strings")
    out = {str(k): _js_string(v) for k, v in value.items()}
    size = sum(_serialised_length(k) + _serialised_length(v) for k, v in out.items())
    if size > MAX_CUSTOM_METADATA:
        raise R2Error("put", "Your metadata headers exceed the maximum allowed metadata size.",
                      10012)
    return out


def _serialised_length(text: str) -> int:
    # R2 counts a string with any character above U+00FF as two bytes per UTF-16 unit
    units = len(text.encode("utf-16-le")) // 2
    return units * 2 if any(ord(c) >= 256 for c in text) else units


def _body_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, ByteStream):
        return b"".join(value._take())
    raise TypeError("Failed to execute 'put' on 'R2Bucket': parameter 2 is not of type "
                    "'JsReadableStream or ArrayBuffer or ArrayBufferView or string or Blob'.")


def _check_key(key: Any, method: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"R2 key must be a string, not {type(key).__name__}")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise _invalid_key(method)
    return key


def _options(options: Mapping[str, Any] | None, kwargs: dict[str, Any],
             what: str) -> dict[str, Any]:
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"{what} must be a dict of options (or keyword arguments), "
                        f"not {type(options).__name__}")
    merged = dict(options or {})
    merged.update(kwargs)
    return merged


def _expected_hashes(opts: Mapping[str, Any]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for field, name, hex_len in _HASHES:
        value = opts.get(field)
        if value is None:
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            out[field] = bytes(value)
            continue
        if not isinstance(value, str):
            raise TypeError(f"{field} must be a hex string or bytes")
        if len(value) != hex_len:
            raise TypeError(f"{name} is {hex_len} hex characters, not {len(value)}")
        try:
            out[field] = bytes.fromhex(value)
        except ValueError:
            raise TypeError(f"{name} must be hex characters") from None
    if len(out) > 1:
        raise TypeError("You cannot specify multiple hashing algorithms.")
    return out


def _etags(value: Any) -> list[tuple[str, str]]:
    """An onlyIf etag condition as [(kind, etag)], kind "strong", "weak" or "wildcard"."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError("onlyIf etag conditions must be strings")
        for part in item.split(","):
            text = part.strip()
            if text == "*":
                out.append(("wildcard", ""))
            elif text.startswith("W/"):
                out.append(("weak", text[2:].strip('"')))
            else:
                out.append(("strong", text.strip('"')))
    return out


def _matches(conditions: list[tuple[str, str]], etag: str, weak_ok: bool) -> bool:
    return any(kind == "wildcard" or (value == etag and (kind == "strong" or weak_ok))
               for kind, value in conditions)


def _condition_holds(only_if: Mapping[str, Any], row: Mapping[str, Any] | None) -> bool:
    """R2's conditional rules (RFC 7232 section 6) for ``onlyIf`` against an existing row."""
    etag_matches = only_if.get("etagMatches")
    etag_not = only_if.get("etagDoesNotMatch")
    after = only_if.get("uploadedAfter")
    before = only_if.get("uploadedBefore")
    if row is None:
        return etag_matches is None and after is None
    seconds = bool(only_if.get("secondsGranularity"))

    def trunc(ms: int) -> int:
        return ms // 1000 * 1000 if seconds else ms

    etag, uploaded = row["etag"], trunc(row["uploaded"])
    if_match = etag_matches is None or _matches(_etags(etag_matches), etag, False)
    if_none = etag_not is None or not _matches(_etags(etag_not), etag, True)
    modified = (after is None or trunc(_epoch_ms(after, "uploadedAfter")) < uploaded
                or (etag_not is not None and if_none))
    unmodified = (before is None or uploaded < trunc(_epoch_ms(before, "uploadedBefore"))
                  or (etag_matches is not None and if_match))
    return if_match and if_none and modified and unmodified


def _range(spec: Any, size: int) -> tuple[int, int]:
    """``(offset, length)`` of a ``range`` option against an object of ``size`` bytes."""
    if not isinstance(spec, Mapping):
        raise TypeError("range must be a dict: {'offset': n, 'length': n} or {'suffix': n}")
    offset, length, suffix = spec.get("offset"), spec.get("length"), spec.get("suffix")
    for name, number in (("offset", offset), ("length", length), ("suffix", suffix)):
        if number is not None and (not isinstance(number, int) or isinstance(number, bool)
                                   or number < 0):
            raise TypeError(f"Invalid range. {name} must be a non-negative integer.")
    if suffix is not None:
        if offset is not None:
            raise TypeError("Suffix is incompatible with offset.")
        if length is not None:
            raise TypeError("Suffix is incompatible with length.")
        if suffix <= 0:
            raise _bad_range("get")
        suffix = min(suffix, size)
        return size - suffix, suffix
    offset = 0 if offset is None else offset
    length = size - offset if length is None else length
    if offset > size or length <= 0:
        raise _bad_range("get")
    return offset, min(length, size - offset)


def _encode_cursor(key: str) -> str:
    return base64.b64encode(key.encode("utf-8")).decode("ascii")


def _decode_cursor(cursor: str) -> str | None:
    """The key a cursor continues after; an unreadable cursor lists nothing, as R2 does."""
    try:
        return base64.b64decode(cursor.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None


_COLUMNS = "key, blob, version, size, etag, uploaded, checksums, http_metadata, custom_metadata"


def _as_row(values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_COLUMNS.split(", "), values, strict=True))


class R2Bucket:
    """One R2 bucket: ``env.MY_BUCKET`` in a Python Worker.

    Args:
        root: the bucket's folder (the layout gives ``<state>/r2/<bucket_name>/``).
        clock: gives ``uploaded`` times and decides ``onlyIf`` date conditions.
    """

    def __init__(self, root: Path, clock: Clock) -> None:
        self.root = root
        self._blobs = root / "blobs"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(self._blobs, exc) from exc
        self._file = SqliteFile(root / "objects.sqlite", _SCHEMA)
        self._clock = clock

    def __repr__(self) -> str:
        return f"R2Bucket({str(self.root)!r})"

    def close(self) -> None:
        """Close the metadata file (idempotent)."""
        self._file.close()

    # -- reads ----------------------------------------------------------------------------------

    def _find(self, key: str) -> dict[str, Any] | None:
        with self._file.read() as conn:
            found = conn.execute(f"SELECT {_COLUMNS} FROM objects WHERE key = ?",
                                 (key,)).fetchone()
        return None if found is None else _as_row(found)

    async def head(self, key: str) -> R2Object | None:
        """The object's metadata, or None if there is no such key."""
        row = self._find(_check_key(key, "head"))
        if row is None:
            return None
        return R2Object(row, JsDict(offset=0, length=row["size"], suffix=None))

    async def get(self, key: str, options: Mapping[str, Any] | None = None, /,
                  **kwargs: Any) -> R2Object | None:
        """The object with its body, or None if there is no such key.

        Options: ``range`` (``{"offset", "length"}`` or ``{"suffix"}``), ``onlyIf``
        (``etagMatches``, ``etagDoesNotMatch``, ``uploadedBefore``, ``uploadedAfter``): if
        the condition fails the result is an `R2Object` without a body, as on R2.
        """
        opts = _options(options, kwargs, "get options")
        _check_key(key, "get")
        missing = self._blobs
        for _ in range(5):  # a concurrent put may replace the body between the row and its file
            row = self._find(key)
            if row is None:
                return None
            if opts.get("onlyIf") is not None and not _condition_holds(opts["onlyIf"], row):
                return R2Object(row, JsDict(offset=0, length=row["size"], suffix=None))
            offset, length = (0, row["size"]) if opts.get("range") is None else _range(
                opts["range"], row["size"])
            data = self._read_blob(row["blob"], offset, length)
            if data is not None:
                return R2ObjectBody(row, JsDict(offset=offset, length=length, suffix=None), data)
            missing = self._blobs / str(row["blob"])
        raise storage_error(missing,
                            FileNotFoundError("the object's body file is missing"))

    def _read_blob(self, name: str, offset: int, length: int) -> bytes | None:
        path = self._blobs / name
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(path, exc) from exc

    async def list(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> JsDict:
        """``{"objects", "truncated", "cursor", "delimitedPrefixes"}`` in UTF-8 key order.

        Options: ``prefix``, ``delimiter`` (keys with it after the prefix are rolled up into
        ``delimitedPrefixes``; each counts against ``limit``), ``cursor``, ``startAfter``,
        ``limit`` (1-1000, default 1000; at most 100 with ``include``), ``include``
        (``["httpMetadata", "customMetadata"]``: otherwise those come back empty).
        ``cursor`` is None unless ``truncated``.
        """
        opts = _options(options, kwargs, "list options")
        limit = opts.get("limit")
        limit = MAX_LIST_KEYS if limit is None else limit
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_KEYS:
            raise R2Error("list", "MaxKeys params must be positive integer <= 1000.", 10022)
        if isinstance(opts.get("include"), str):
            raise TypeError('include must be a list, such as ["httpMetadata", "customMetadata"]')
        include = list(opts.get("include") or [])
        for item in include:
            if item not in _INCLUDE:
                raise ValueError(f"Unsupported include value {item}")
        if include:
            limit = min(limit, MAX_LIST_KEYS_WITH_METADATA)
        prefix = opts.get("prefix") or ""
        delimiter = opts.get("delimiter") or None
        after = opts.get("startAfter")
        if opts.get("cursor"):
            from_cursor = _decode_cursor(opts["cursor"])
            if from_cursor is None:
                return JsDict(objects=[], truncated=False, cursor=None, delimitedPrefixes=[])
            after = from_cursor if after is None or from_cursor > after else after
        objects, prefixes, last, more = self._scan(prefix, delimiter, after, limit)
        for obj in objects:
            if "httpMetadata" not in include:
                obj.httpMetadata = _http_out({})
            if "customMetadata" not in include:
                obj.customMetadata = JsDict()
        return JsDict(objects=objects, truncated=more,
                      cursor=_encode_cursor(last) if more and last is not None else None,
                      delimitedPrefixes=prefixes)

    def _scan(self, prefix: str, delimiter: str | None, after: str | None,
              limit: int) -> tuple[builtins.list[R2Object], builtins.list[str], str | None, bool]:
        """Up to ``limit`` entries after ``after``; the last key covered; whether more remain."""
        objects: builtins.list[R2Object] = []
        prefixes: builtins.list[str] = []
        last = after
        with self._file.read() as conn:
            for row, rolled, covered in self._entries(conn, prefix, delimiter, after):
                if len(objects) + len(prefixes) == limit:
                    return objects, prefixes, last, True
                if row is not None:
                    objects.append(R2Object(row))
                else:
                    prefixes.append(str(rolled))
                last = covered
        return objects, prefixes, last, False

    @staticmethod
    def _entries(conn: sqlite3.Connection, prefix: str, delimiter: str | None,
                 after: str | None) -> Iterator[tuple[dict[str, Any] | None, str | None, str]]:
        """Objects ``(row, None, key)`` and rolled-up prefixes ``(None, prefix, last key under
        it)`` in key order, read in batches."""
        last = after
        while True:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM objects WHERE substr(key, 1, length(:prefix)) = :prefix "
                "AND (:last IS NULL OR key > :last) ORDER BY key LIMIT :batch",
                {"prefix": prefix, "last": last, "batch": _SCAN_BATCH}).fetchall()
            if not rows:
                return
            for values in rows:
                row = _as_row(values)
                at = row["key"].find(delimiter, len(prefix)) if delimiter else -1
                if at < 0:
                    last = row["key"]
                    yield row, None, last
                    continue
                rolled = row["key"][:at + len(str(delimiter))]
                # every key under the rolled-up prefix is covered: go on after the greatest
                last = conn.execute(
                    "SELECT max(key) FROM objects WHERE substr(key, 1, length(:p)) = :p",
                    {"p": rolled}).fetchone()[0]
                yield None, rolled, str(last)
                break

    # -- writes ---------------------------------------------------------------------------------

    async def put(self, key: str, value: Any, options: Mapping[str, Any] | None = None, /,
                  **kwargs: Any) -> R2Object | None:
        """Store ``value`` (``str``, ``bytes``, a `ByteStream` or None for empty) as ``key``.

        Options: ``httpMetadata`` (``contentType``, ``contentLanguage``,
        ``contentDisposition``, ``contentEncoding``, ``cacheControl``, ``cacheExpiry``),
        ``customMetadata`` (str -> str), one of ``md5``/``sha1``/``sha256``/``sha384``/
        ``sha512`` (hex or bytes; a mismatch is refused), ``onlyIf`` (returns None without
        writing when the condition fails). Returns the new object's metadata.
        """
        opts = _options(options, kwargs, "put options")
        _check_key(key, "put")
        data = _body_bytes(value)
        expected = _expected_hashes(opts)
        http = _http_in(opts.get("httpMetadata"))
        custom = _custom_in(opts.get("customMetadata"))
        if len(data) > MAX_VALUE_BYTES:
            raise R2Error("put", "Your proposed upload exceeds the maximum allowed object size.",
                          100100)
        checksums = self._checksums(data, expected)
        row: dict[str, Any] = {"key": key, "blob": secrets.token_hex(16), "version": secrets.token_hex(16),
               "size": len(data), "etag": hashlib.md5(data).hexdigest(),
               "uploaded": int(self._clock.now_ms()), "checksums": json.dumps(checksums),
               "http_metadata": json.dumps(http), "custom_metadata": json.dumps(custom)}
        self._write_blob(row["blob"], data)
        old: str | None = None
        try:
            with self._file.write() as conn:
                found = conn.execute(f"SELECT {_COLUMNS} FROM objects WHERE key = ?",
                                     (key,)).fetchone()
                current = None if found is None else _as_row(found)
                if opts.get("onlyIf") is not None and not _condition_holds(opts["onlyIf"],
                                                                           current):
                    self._remove_blob(row["blob"])
                    return None
                conn.execute(f"INSERT OR REPLACE INTO objects ({_COLUMNS}) VALUES "
                             "(:key, :blob, :version, :size, :etag, :uploaded, :checksums, "
                             ":http_metadata, :custom_metadata)", row)
                old = None if current is None else current["blob"]
        except BaseException:
            self._remove_blob(row["blob"])
            raise
        if old is not None:
            self._remove_blob(old)
        return R2Object(row)

    @staticmethod
    def _checksums(data: bytes, expected: Mapping[str, bytes]) -> dict[str, str]:
        out = {}
        for field, name, _ in _HASHES:
            if field not in expected:
                continue
            actual = hashlib.new(field, data).digest()
            if actual != expected[field]:
                raise R2Error("put", f"The {name} checksum you specified did not match what we "
                              f"received.\nYou provided a {name} checksum with value: "
                              f"{expected[field].hex()}\nActual {name} was: {actual.hex()}",
                              10037)
            if field != "md5":  # md5 is the etag
                out[field] = actual.hex()
        return out

    def _write_blob(self, name: str, data: bytes) -> None:
        final = self._blobs / name
        temp = self._blobs / f".tmp-{name}"
        try:
            with temp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, final)
            folder = os.open(self._blobs, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise storage_error(final, exc) from exc

    def _remove_blob(self, name: str) -> None:
        try:
            (self._blobs / name).unlink(missing_ok=True)
        except OSError:
            pass  # an unreferenced body file only costs space

    async def delete(self, keys: str | builtins.list[str]) -> None:
        """Remove one key or a list of keys (missing keys are skipped)."""
        names = keys if isinstance(keys, list) else [keys]
        for key in names:
            _check_key(key, "delete")
        with self._file.write() as conn:
            blobs = []
            for key in names:
                found = conn.execute("DELETE FROM objects WHERE key = ? RETURNING blob",
                                     (key,)).fetchone()
                if found is not None:
                    blobs.append(found[0])
        for blob in blobs:
            self._remove_blob(blob)
