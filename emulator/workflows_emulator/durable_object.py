"""A stand-in for one Durable Object's storage, backed by its own SQLite file (WAL).

The engine persists only through this interface, the shape Cloudflare's Workflows engine
uses: ``sql.exec``, key-value ``get/put/delete/list``, ``transaction()`` and one alarm.
Nothing else in the emulator opens SQLite.

Files are opened on demand: an `OpenFiles` budget keeps at most so many connections open
and closes the least recently used idle one first, so any number of objects fit in a small
``ulimit -n``. Every SQLite failure leaves here as a `StorageError` naming the file and the
cause (`DamagedStateError` for a file that is not a state file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
import shutil
import sqlite3
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .batched_close import BatchedCloser, sync_file_systems
from .errors import DamagedStateError, EmulatorError, StorageError
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

    __slots__ = ("_columns", "_cursor")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        # The fields are read from the cursor when asked for (a step's INSERT asks for none).
        self._cursor = cursor
        self._columns: list[str] | None = None

    @property
    def column_names(self) -> list[str]:
        if self._columns is None:
            self._columns = [d[0] for d in self._cursor.description or ()]
        return self._columns

    @property
    def rows_written(self) -> int:
        count = self._cursor.rowcount
        return count if count > 0 else 0

    @property
    def last_row_id(self) -> int | None:
        return self._cursor.lastrowid

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


_DOCTOR = "run `workflows-emulator doctor --persist-to <state dir>` to find and set aside damaged files"
EMPTY_FILE = "the file is empty or holds no workflows-emulator tables"
DAMAGED_FILE = "the file is damaged or is not a workflows-emulator state file"


def version_mismatch(path: Path, found: int, version: int) -> str:
    """Why a state file of schema version ``found`` is refused by one reading ``version``."""
    return (f"state file {path} has schema version {found}, but this workflows-emulator reads "
            f"version {version}: use the emulator version that wrote it, or point the emulator "
            "at a new state directory")


def storage_error(path: Path, exc: BaseException) -> StorageError:
    """``exc`` (from SQLite or the OS) as a `StorageError` that says what went wrong."""
    if isinstance(exc, StorageError):
        return exc
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    code = exc.errno if isinstance(exc, OSError) else None
    if name.startswith("SQLITE_FULL") or "disk is full" in text or code == errno.ENOSPC:
        return StorageError(path, "the disk is full",
                            "free some space: the instance resumes from its last commit")
    if (name.startswith("SQLITE_READONLY") or "readonly" in text
            or code in (errno.EROFS, errno.EACCES, errno.EPERM)):
        return StorageError(path, "the state file or its folder is read-only",
                            "make the state directory writable, or use another --persist-to")
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "not a database" in text or (
            "malformed" in text):
        return DamagedStateError(path, DAMAGED_FILE, _DOCTOR)
    if name.startswith("SQLITE_IOERR") or "I/O error" in text or code == errno.EIO:
        return StorageError(path, f"a disk I/O error ({text})",
                            "check the disk; the instance resumes from its last commit")
    if name.startswith("SQLITE_BUSY") or "database is locked" in text:
        return StorageError(path, "the file is locked by another process",
                            "only one process may drive a state directory")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text or code in (
            errno.EMFILE, errno.ENFILE):
        if code in (errno.EMFILE, errno.ENFILE) or out_of_descriptors():
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            return StorageError(path, f"too many open files (the limit is {soft})",
                                "raise it with `ulimit -n`, or pass a smaller max_open_files")
        return StorageError(path, "cannot open the file (is its folder missing or not "
                            "accessible?)")
    return StorageError(path, f"SQLite failed: {text}")


def out_of_descriptors() -> bool:
    """Whether this process is (nearly) out of file descriptors."""
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    os.close(fd)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft != resource.RLIM_INFINITY and fd >= soft - 4


def default_open_files() -> int:
    """How many storages may hold a connection at once: a share of ``ulimit -n``.

    Each open WAL database holds three descriptors (the file, its WAL and shared memory) and
    some 50-100 KB of SQLite's memory: at most 256 are kept open.
    """
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(4, min(256, (soft - 64) // 6))


class OpenFiles:
    """A budget of open connections shared by many storages, least recently used closed first.

    Closing a WAL database checkpoints it: a released connection is closed on a background
    thread, off the event loop, with others released about then (see `BatchedCloser`);
    `finish` waits for every close.

    Args:
        limit: the most storages with an open connection (default `default_open_files`).
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = max(1, limit if limit is not None else default_open_files())
        self._open: OrderedDict[int, DurableObjectStorage] = OrderedDict()
        self.closer = BatchedCloser()

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, storage: DurableObjectStorage) -> None:
        """``storage`` holds a connection now; close others beyond the budget."""
        self._open[id(storage)] = storage
        if len(self._open) > self.limit:
            self.shrink(self.limit)
        if len(self._open) + self.closer.unclosed > self.limit:
            self.wait_closed()  # connections still closing hold descriptors too

    def used(self, storage: DurableObjectStorage) -> None:
        """``storage`` was just used: it is closed last."""
        self._open.move_to_end(id(storage))

    def closed(self, storage: DurableObjectStorage) -> None:
        """``storage`` released its connection."""
        self._open.pop(id(storage), None)

    def shrink(self, keep: int) -> int:
        """Close idle connections, oldest first, until at most ``keep`` are open; how many."""
        closed = 0
        for storage in list(self._open.values()):
            if len(self._open) <= keep:
                break
            if not storage.in_transaction:
                storage.release()
                closed += 1
        return closed

    def close_later(self, conn: sqlite3.Connection, path: Path) -> None:
        """Close ``conn`` (to the file ``path``) on the background thread."""
        self.closer.close_later(conn, path)

    def wait_closed(self) -> None:
        """Wait until every connection handed to `close_later` is closed."""
        self.closer.wait_closed()

    def finish(self) -> None:
        """Wait for the pending closes and stop the background thread (idempotent)."""
        self.closer.finish()


_TEMPLATES: dict[tuple[str, int], bytes] = {}
_FOLDERS_MADE: set[Path] = set()
"""Folders of objects this process made (no ``mkdir`` per new object: a file taken from
`PreparedFiles` lands in an existing folder, else the template write makes it again)."""
_BASE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS _kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _alarm (id INTEGER PRIMARY KEY CHECK (id = 0), at REAL NOT NULL);")


def _template(schema: str, version: int) -> bytes:
    """The bytes of an empty object file with ``schema`` at ``version``, already in WAL mode.

    Built once per process: a new object's file is these bytes written in one go, which is
    several times cheaper than creating the tables and switching the journal mode each time.
    """
    key = (schema, version)
    got = _TEMPLATES.get(key)
    if got is None:
        with tempfile.TemporaryDirectory(prefix="workflows-emulator-template-") as folder:
            path = Path(folder) / "template.sqlite"
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                # Small pages: a transition appends a few hundred bytes, and WAL writes whole pages.
                conn.executescript("PRAGMA page_size=1024;" + _BASE_SCHEMA + schema +
                                   f"PRAGMA user_version={int(version)}; PRAGMA journal_mode=WAL;")
            finally:
                conn.close()
            got = _TEMPLATES[key] = path.read_bytes()
    return got


_SIDECARS = ("-wal", "-shm")
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _make_companions(path: Path) -> None:
    """Create ``path``'s empty ``-wal`` and ``-shm`` (neither may exist)."""
    for suffix in _SIDECARS:
        os.close(os.open(f"{path}{suffix}", _NEW_FILE, 0o644))


def _unlink_companions(path: Path) -> None:
    """Remove ``path``'s ``-wal`` and ``-shm`` if they exist."""
    for suffix in _SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


class PreparedFiles:
    """New object files made ahead on a background thread, and their companions reused.

    Making a file is the dearest part of a new object on some disks: allocating an inode can
    cost a few hundred microseconds of kernel time (on this project's VMs), and a WAL
    database needs three (the file, its ``-wal`` and its ``-shm``, which SQLite deletes when
    the last connection closes), while renaming or linking one costs some ten. So:

    * a background thread makes files with the template's bytes, in batches offered once
      complete, the batches taking a few folders in turn (so the thread seldom holds the
      lock of a folder a claim renames from); `claim` moves one to the new object's name;
    * companions are made once and kept here: before SQLite opens an object for writing,
      `lend` hard-links a pair under its name (unless it has a WAL), and once SQLite deleted
      that name (the object was closed) the thread empties the pair (the WAL's header
      zeroed, so none of its frames is ever replayed; the ``-shm`` truncated, as SQLite's
      first connection does) and it is lent again.

    No file here is ever open (no descriptor is held), and none is an object: nothing lists
    this folder. A killed process leaves at most empty companions under an object's name,
    never a file (a new file removes such companions first). The folder is emptied when
    opened (the caller holds the state directory's lock) and on `close`.

    Args:
        directory: where the files wait; on the same file system as the objects' folders.
        schema, version: the template of the files (as `DurableObjectStorage` takes them).
        limit: the most files made ahead; the thread makes more as claims find none left.
        pairs: the most companion pairs kept (one per object open at once is needed).
        background: make files ahead on a thread; else nothing is made ahead (claims find
            none), and pairs are made and emptied when an object opens (no thread).
    """

    BATCH = 8
    """Files per batch: the thread offers a batch's files together, once all are made."""
    FOLDERS = 4
    """Folders the batches take in turn (so the thread rarely fills one claims rename from)."""

    def __init__(self, directory: Path | str, schema: str, version: int, *, limit: int = 32,
                 pairs: int = 256, background: bool = True) -> None:
        self.directory = Path(directory)
        self.schema = schema
        self.version = version
        self._data = _template(schema, version)
        self._limit = max(self.BATCH, limit)
        self._target = self.BATCH
        self._pair_limit = pairs
        self._ready: deque[Path] = deque()
        """Files made, oldest first."""
        self._fresh: deque[Path] = deque()
        """Companion pairs made and never used (``<pair>-wal``, ``<pair>-shm``)."""
        self._lent: deque[tuple[Path, Path]] = deque()
        """``(pair, object file)``: pairs linked under an object's name, oldest first."""
        self._dropped: set[Path] = set()
        """Pairs lent to removed objects: deleted, not reused, once free."""
        self._pairs = 0
        self._pair_target = self.BATCH
        """Fresh pairs kept ready: grows when a claim finds none (more objects open at once)."""
        self._waiting = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._background = background
        self._batches = 0
        self._claims = 0
        self._named = 0
        self.made = 0
        """How many files the thread has made (for tests)."""
        self.reused = 0
        """How many companion pairs were linked again (for tests)."""
        discard_prepared(self.directory)

    def __len__(self) -> int:
        return len(self._ready)

    def claim(self, path: Path) -> bool:
        """Move a file made ahead (the template) to ``path``, which must not exist; False if
        none is ready (the caller writes one in place)."""
        _unlink_companions(path)  # left by a removal cut off: never replay another's WAL
        self._claims += 1
        try:
            slot = self._ready.popleft()
        except IndexError:
            self._wanted(dry=True)
            return False
        try:
            os.rename(slot, path)
        except OSError as exc:
            if exc.errno == errno.EXDEV:  # another file system: files are written in place
                self._stop_thread()
            else:  # the object's folder is missing, say: the file can serve another
                self._ready.appendleft(slot)
            return False
        if len(self._ready) <= self._target // 2:
            self._wanted(dry=False)
        return True

    def lend(self, path: Path) -> None:
        """Before SQLite opens ``path`` for writing: link a companion pair under its name if it
        has none (if it has a ``-wal``, that is the file's and stays)."""
        try:
            pair = self._fresh.popleft()
        except IndexError:
            pair = None
        if pair is None and not self._background:
            try:
                pair = self._reuse_or_make_pair()
            except OSError:
                pair = None
        if pair is None:
            self._pair_target = min(self._limit, self._pair_target * 2)
            self._wanted(dry=False)
            return  # SQLite makes the companions itself
        try:
            os.link(f"{pair}-wal", f"{path}-wal")
        except OSError:  # it has its own WAL (or its folder is gone: the open says so)
            self._fresh.appendleft(pair)
            return
        with contextlib.suppress(OSError):  # a -shm there may be in use by a reader: kept
            os.link(f"{pair}-shm", f"{path}-shm")
        self._lent.append((pair, path))
        if len(self._fresh) < 4:
            self._wanted(dry=False)  # in bulk: waking the thread costs a switch

    def forget(self, path: Path) -> None:
        """The object file ``path`` is being removed: the pairs lent to it now are not reused
        (a reader in another process may still hold the removed companions open); once free,
        their files go. Called before the object's files go."""
        self._dropped.update(pair for pair, owner in self._lent if owner == path)

    def _wanted(self, dry: bool) -> None:
        """Wake the thread (started on the second object's claim: an emulator that creates
        one object, or none, never makes a file ahead, nor has a thread compete with its
        one instance for the interpreter); ``dry``: a claim found no file ready."""
        if self._stopped or not self._background:
            return
        if self._thread is None:
            if self._claims < 2:
                return
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="workflows-emulator-prepare")
            self._thread.start()
        elif dry:  # claims outpace the thread: keep more ahead
            self._target = min(self._limit, self._target * 2)
        with self._wake:
            self._waiting += 1
            self._wake.notify()

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._stopped and not self._waiting:
                        self._wake.wait()
                    self._waiting = 0
                    if self._stopped:
                        return
                self._work()
        except OSError:
            self._stopped = True  # claims make their files in place from now on

    def _work(self) -> None:
        self._reclaim()
        while not self._stopped and len(self._ready) < self._target:
            self._make_batch()
            self._reclaim()

    def _reuse_or_make_pair(self) -> Path | None:
        """Without the thread: a lent pair free again, else a new one (while under the limit)."""
        self._reclaim()
        if self._fresh:
            return self._fresh.popleft()
        if self._pairs >= self._pair_limit:
            return None
        folder = self.directory / "pairs"
        folder.mkdir(parents=True, exist_ok=True)
        self._pairs += 1
        self._named += 1
        pair = folder / f"p{self._named}"  # (a name never given before: pairs are deleted)
        _make_companions(pair)
        return pair

    def _reclaim(self) -> None:
        """Empty the lent pairs whose object was closed (SQLite deleted their names under it,
        the ``-wal`` last, after closing both) and offer them again."""
        lent, dropped = self._lent, self._dropped
        looked = 0
        emptied: list[Path] = []
        while lent and looked < 4:  # the oldest first: objects mostly close in that order
            pair, owner = lent[0]
            wal = f"{pair}-wal"
            if os.stat(wal).st_nlink != 1 or _same_file(wal, f"{owner}-wal"):
                lent.rotate(-1)  # still the object's (the second test: link counts lie on
                looked += 1      # some file systems)
                continue
            lent.popleft()
            if pair in dropped:  # its object was removed: a reader elsewhere may hold them
                dropped.discard(pair)
                _unlink_companions(pair)
                self._pairs -= 1
                continue
            os.truncate(wal, 0)
            os.truncate(f"{pair}-shm", 0)  # (else the first connection to it frees it, later)
            emptied.append(pair)
        if emptied:
            _sync_emptied([Path(f"{pair}-wal") for pair in emptied])
            self.reused += len(emptied)
            self._fresh.extend(emptied)

    def _make_batch(self) -> None:
        self._batches += 1
        batch = self._batches
        # A few folders in turn: claims mostly drained one by the time it is filled again.
        folder = self.directory / f"b{batch % self.FOLDERS}"
        folder.mkdir(parents=True, exist_ok=True)
        slots: list[Path] = []
        pairs: list[Path] = []
        for n in range(self.BATCH):
            if self._stopped:
                break
            if (self._pairs < self._pair_limit
                    and len(self._fresh) + len(pairs) < self._pair_target):
                pair = folder / f"p{batch}-{n}"
                _make_companions(pair)
                pairs.append(pair)
                self._pairs += 1
            slot = folder / f"s{batch}-{n}"
            fd = os.open(slot, _NEW_FILE, 0o644)
            try:
                os.write(fd, self._data)
            finally:
                os.close(fd)
            slots.append(slot)
        self.made += len(slots)
        self._fresh.extend(pairs)
        self._ready.extend(slots)

    def _stop_thread(self) -> None:
        self._stopped = True
        with self._wake:
            self._wake.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def close(self) -> None:
        """Stop the thread and remove every file not claimed (idempotent); the companions
        lent stay with their objects."""
        self._stop_thread()
        self._ready.clear()
        self._fresh.clear()
        self._lent.clear()
        discard_prepared(self.directory)


def _same_file(a: str, b: str) -> bool:
    """Whether the paths ``a`` and ``b`` name one file (``False`` if either is missing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def discard_prepared(directory: Path) -> None:
    """Remove the folder of prepared files (left by a process that stopped without closing)."""
    shutil.rmtree(directory, ignore_errors=True)


def _sync_emptied(wals: list[Path]) -> None:
    """Make the emptying of ``wals`` durable before their pairs serve other files.

    A crash of the machine after a pair is lent again must not bring back the previous
    owner's frames (valid, with their header) under the new file's name, which SQLite would
    replay into it. One sync of the file system covers them all; where there is none, each
    WAL is synced.
    """
    if sync_file_systems(wals[:1]):
        return
    for wal in wals:
        fd = os.open(wal, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SqlStorage:
    """``storage.sql``: run SQL against this object's database."""

    __slots__ = ("_storage",)

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        """Run one statement with ``?`` bindings and return its cursor."""
        storage = self._storage
        try:
            return SqlCursor(storage._conn.execute(query, bindings))
        except sqlite3.Error as exc:
            raise storage_error(storage.path, exc) from exc

    def executescript(self, script: str) -> None:
        """Run several statements (schema set-up)."""
        storage = self._storage
        try:
            storage._conn.executescript(script)
        except sqlite3.Error as exc:
            raise storage_error(storage.path, exc) from exc

    def exec_many(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement for each binding tuple in ``rows``."""
        storage = self._storage
        try:
            storage._conn.executemany(query, rows)
        except sqlite3.Error as exc:
            raise storage_error(storage.path, exc) from exc


class _Reconnect:
    """Stands in for a released connection: the first use opens the file again."""

    __slots__ = ("_storage",)

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def execute(self, *args: Any) -> sqlite3.Cursor:
        return self._storage._reconnect().execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        return self._storage._reconnect().executemany(*args)

    def executescript(self, script: str) -> sqlite3.Cursor:
        return self._storage._reconnect().executescript(script)


class _Closed:
    """A closed storage's connection: any use is an error."""

    __slots__ = ("_path",)

    def __init__(self, path: Path) -> None:
        self._path = path

    def _refuse(self, *_: Any) -> sqlite3.Cursor:
        raise sqlite3.ProgrammingError(f"the storage of {self._path} is closed")

    execute = executemany = executescript = _refuse


class DurableObjectStorage:
    """One Durable Object's storage: SQL, key-value, transactions and an alarm.

    Each statement outside `transaction` commits on its own; inside, all commit together
    or not at all. WAL with ``synchronous=NORMAL`` survives a killed process.

    Args:
        path: the SQLite file.
        schema: DDL of the object's own tables, in the file when it is created.
        version: the schema's version, kept in the file (``PRAGMA user_version``); a file
            of another version is refused with an error naming both.
        files: the open-connection budget to count against (``None``: always open).
        create: whether a missing file may be created (else `StorageError`).
        read_only: open for reading only; nothing is ever written (no schema either).
        prepared: files made ahead to take a new file from (when its template matches).
    """

    def __init__(self, path: Path | str, schema: str = "", version: int = 0, *,
                 files: OpenFiles | None = None, create: bool = True,
                 read_only: bool = False, prepared: PreparedFiles | None = None) -> None:
        self.path = Path(path)
        self.is_new = not self.path.exists()
        """Whether this object had no storage before (nothing to erase, nothing to recover)."""
        self.read_only = read_only
        self._files = files
        self._depth = 0
        self._closed = False
        self._first_commit = False
        self.sql = SqlStorage(self)
        self._prepared = prepared
        self._uri: str | None = None
        if self.is_new and (read_only or not create):
            raise StorageError(self.path, "the state file does not exist")
        if self.is_new and self.path.parent not in _FOLDERS_MADE:
            self._make_folder()
        self._conn: Any = self._connect(schema, version)

    def _make_folder(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(self.path, exc) from exc
        if len(_FOLDERS_MADE) < 1024:
            _FOLDERS_MADE.add(self.path.parent)

    # -- connections --------------------------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        # Never "rwc": a new file is written from the template first, and a released storage
        # whose file was deleted meanwhile must not come back empty.
        uri = self._uri
        if uri is None:
            mode = "ro" if self.read_only else "rw"
            uri = self._uri = f"{self.path.absolute().as_uri()}?mode={mode}"
        files = self._files
        if files is not None and not self.read_only:  # no second writer during a batch
            files.closer.wait_closing(self.path)
        if self._prepared is not None and not self.read_only:
            self._prepared.lend(self.path)
        for retry in (True, False):
            try:
                return sqlite3.connect(uri, uri=True, isolation_level=None,
                                       check_same_thread=False)
            except sqlite3.Error as exc:
                # Out of descriptors: give back the idle half of the budget and try once more.
                if retry and files is not None:
                    files.wait_closed()
                    files.shrink(len(files) // 2)
                    files.wait_closed()
                    continue
                raise storage_error(self.path, exc) from exc
        raise AssertionError("unreachable")

    def _connect(self, schema: str, version: int) -> sqlite3.Connection:
        if self.is_new:
            prepared = self._prepared
            if (prepared is None or prepared.schema != schema or prepared.version != version
                    or not prepared.claim(self.path)):
                self._write_template(schema, version)
        conn = self._open_connection()
        try:
            if not self.is_new:  # a file just made is the template: nothing to check
                self._check(conn, version)
            # A new file's first commit starts its WAL, which NORMAL would fsync (about
            # 0.6 ms on this kind of disk): a killed process loses nothing without it, and a
            # power loss at worst the object's creation. NORMAL from then on.
            self._first_commit = self.is_new and not self.read_only
            self._configure(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise storage_error(self.path, exc) from exc
        except BaseException:
            conn.close()
            raise
        if self._files is not None:
            self._files.opened(self)
        return conn

    def _check(self, conn: sqlite3.Connection, version: int) -> None:
        """Refuse a file of another schema version, or one without this module's tables."""
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        has_tables = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = '_kv'").fetchone() is not None
        if has_tables and found != version:
            raise EmulatorError(version_mismatch(self.path, found, version))
        if not has_tables:
            raise DamagedStateError(self.path, EMPTY_FILE, _DOCTOR)

    def _write_template(self, schema: str, version: int) -> None:
        """Create the file from the template (refusing to overwrite one made meanwhile)."""
        data = _template(schema, version)
        if not self.path.parent.is_dir():  # removed since this process last made it
            self._make_folder()
        try:
            if not self.path.exists():  # companions left by a removal cut off go first: a
                _unlink_companions(self.path)  # kill between the two never pairs them with it
            fd = os.open(self.path, _NEW_FILE, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            raise storage_error(self.path, exc) from exc

    def _configure(self, conn: sqlite3.Connection) -> None:
        """The per-connection settings: read-only, or how commits reach the disk."""
        if self.read_only:
            conn.execute("PRAGMA query_only=1")
        else:
            conn.execute("PRAGMA synchronous=OFF" if self._first_commit
                         else "PRAGMA synchronous=NORMAL")

    def _reconnect(self) -> sqlite3.Connection:
        """Open the file again after `release` (it must still exist)."""
        conn = self._open_connection()
        try:
            self._configure(conn)
        except sqlite3.Error:
            conn.close()
            raise
        self._conn = conn
        if self._files is not None:
            self._files.opened(self)
        return conn

    def release(self) -> None:
        """Close the connection for now; the next use opens the file again (not in a transaction)."""
        conn = self._conn
        if self._closed or isinstance(conn, _Reconnect) or self._depth:
            return
        self._conn = _Reconnect(self)
        if self._files is not None:
            self._files.closed(self)
            self._files.close_later(conn, self.path)
        else:
            conn.close()

    def connection(self) -> sqlite3.Connection:
        """The open connection, reopened if it was released: for SQLite features `sql` does
        not offer (an authorizer on user SQL). Use it inside `transaction`, where the
        connection budget cannot release it."""
        conn = self._conn
        if isinstance(conn, sqlite3.Connection):
            return conn
        if self._closed:
            raise StorageError(self.path, "the storage is closed")
        try:
            return self._reconnect()
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from exc

    @property
    def is_closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

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
        row = self.sql.exec("SELECT value FROM _kv WHERE key = ?", key).raw()
        return default if not row else loads(row[0][0])

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``."""
        self.sql.exec(
            "INSERT INTO _kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, dumps(value))

    def put_many(self, entries: Mapping[str, Any]) -> None:
        """Store several keys in one transaction."""
        with self.transaction():
            for key, value in entries.items():
                self.put(key, value)

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if it existed."""
        return self.sql.exec("DELETE FROM _kv WHERE key = ?", key).rows_written > 0

    def list(self, prefix: str = "") -> dict[str, Any]:
        """All keys starting with ``prefix``, in key order."""
        rows = self.sql.exec(
            "SELECT key, value FROM _kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            len(prefix), prefix).raw()
        return {k: loads(v) for k, v in rows}

    def delete_all(self) -> None:
        """Erase every table of this object (as ``storage.deleteAll()``)."""
        with self.transaction():
            tables = [r[0] for r in self.sql.exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'").raw()]
            for table in tables:
                self.sql.exec(f'DELETE FROM "{table}"')

    # -- the alarm ----------------------------------------------------------------------

    def set_alarm(self, at_ms: float) -> None:
        """Schedule this object's alarm for ``at_ms`` (epoch ms), replacing any other."""
        self.sql.exec("INSERT OR REPLACE INTO _alarm (id, at) VALUES (0, ?)", at_ms)

    def get_alarm(self) -> float | None:
        """The scheduled alarm time in epoch ms, or ``None``."""
        row = self.sql.exec("SELECT at FROM _alarm WHERE id = 0").raw()
        return None if not row else float(row[0][0])

    def delete_alarm(self) -> None:
        """Cancel the alarm."""
        self.sql.exec("DELETE FROM _alarm WHERE id = 0")

    def close(self) -> None:
        """Close the database (further use raises); closing twice does nothing."""
        if self._closed:
            return
        conn = self._conn
        self._closed = True
        self._conn = _Closed(self.path)
        if isinstance(conn, sqlite3.Connection):
            if self._files is not None:
                self._files.closed(self)
            conn.close()


class _Transaction:
    """``with storage.transaction():`` (a class: this sits on every step's hot path)."""

    __slots__ = ("_storage",)

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def __enter__(self) -> DurableObjectStorage:
        storage = self._storage
        if storage._depth == 0:
            try:
                storage._conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise storage_error(storage.path, exc) from exc
            if storage._files is not None:
                storage._files.used(storage)
        storage._depth += 1
        return storage

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        storage = self._storage
        storage._depth -= 1
        if storage._depth:
            return
        conn = storage._conn
        if exc_type is not None:
            _roll_back(conn)
            return
        hooks = _hooks
        try:
            if hooks is not None:
                hooks.before_commit(storage.path)
            conn.execute("COMMIT")
        except BaseException as failed:
            _roll_back(conn)
            if isinstance(failed, sqlite3.Error | OSError):
                raise storage_error(storage.path, failed) from failed
            raise
        if storage._first_commit:
            storage._first_commit = False
            conn.execute("PRAGMA synchronous=NORMAL")
        if hooks is not None:
            hooks.after_commit(storage.path)


def _roll_back(conn: sqlite3.Connection) -> None:
    """Roll back what is open (a failed COMMIT may already have rolled back on its own)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the connection is unusable; its next use reports why


class DurableObjectNamespace:
    """Maps object names to their storage files under one directory, never outside it."""

    def __init__(self, directory: Path | str, files: OpenFiles | None = None,
                 prepared: PreparedFiles | None = None) -> None:
        self.directory = Path(directory).resolve()
        self.files = files
        self.prepared = prepared
        """New files are taken from these when their schema matches (see `PreparedFiles`)."""

    def path_for(self, name: str) -> Path:
        """The file of object ``name``; refuses names that could leave the directory."""
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            raise EmulatorError(
                f"invalid object name {name!r}: use 1-100 characters from a-z, A-Z, 0-9, "
                "'-' and '_', starting with a letter, digit or '_'"
            )
        # The pattern admits no separator and no leading dot, so the file is always directly
        # inside the (resolved) directory; resolving it again would cost a syscall per part.
        return self.directory / f"{name}.sqlite"

    def open(self, name: str, schema: str = "", version: int = 0, *,
             create: bool = True) -> DurableObjectStorage:
        """Open object ``name``'s storage (creating it if allowed), with ``schema`` (DDL) in it.

        ``version`` is the schema's version, kept in the file; a file of another version is
        refused with an error naming both. The connection counts against `files`.
        """
        return DurableObjectStorage(self.path_for(name), schema, version, files=self.files,
                                    create=create, prepared=self.prepared)

    def exists(self, name: str) -> bool:
        """Whether object ``name`` has a storage file."""
        return self.path_for(name).exists()

    def remove(self, name: str) -> None:
        """Delete object ``name``'s files."""
        path = self.path_for(name)
        if self.prepared is not None:
            self.prepared.forget(path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
