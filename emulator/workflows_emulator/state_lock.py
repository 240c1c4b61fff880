"""One process drives a state directory: an OS lock on ``<state>/lock``.

The lock is a ``flock`` held on an open descriptor for the life of the process (or of the
`Emulator`): the kernel releases it when the process ends, however it ends, so it never goes
stale. The file's text only says who holds it (pid, command, since, and the dev server's
address once it listens), for the message a second process gets and for the CLI to find
the server. Readers (``list``, ``describe``) take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .durable_object import storage_error
from .errors import StateDirectoryBusy, StorageError

LOCK_NAME = "lock"
TEXT_WAIT = 2.0
"""Seconds a contender waits for a new holder to write who it is before calling it unknown."""


@dataclass(frozen=True)
class Holder:
    """Who holds a state directory's lock."""

    pid: int | None
    command: str
    since: float | None
    server: str | None = None
    """The dev server's base URL, once it listens."""

    def describe(self) -> str:
        """``pid 123 (workflows-emulator dev, since 2026-12-03 14:02:11)``."""
        since = ("" if self.since is None else
                 ", since " + datetime.fromtimestamp(self.since).isoformat(sep=" ", timespec="seconds"))
        who = "an unknown process" if self.pid is None else f"pid {self.pid}"
        serving = f", serving {self.server}" if self.server else ""
        return f"{who} ({self.command or 'command unknown'}{since}{serving})"


def _this_command() -> str:
    argv = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
    text = " ".join(argv)
    return text if len(text) <= 160 else text[:157] + "..."


def holder(state_dir: Path) -> Holder | None:
    """Who holds ``state_dir`` now, or ``None`` if nobody does (never blocks, never writes)."""
    path = Path(state_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(path, f"cannot read the lock file ({exc.strerror})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


UNKNOWN = Holder(None, "", None)
"""A holder that has not said who it is yet (caught between its flock and its write)."""


def _read_holder(fd: int) -> Holder:
    """The holder the lock file names, or `UNKNOWN` if its text is missing, torn, or left
    by a process that has died (killed before it could empty the file: its successor has
    taken the flock but not yet written)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid = int(info["pid"])
        named = Holder(pid, str(info.get("command", "")), float(info["since"]), info.get("server"))
    except (ValueError, KeyError, TypeError):
        return UNKNOWN
    return named if _alive(pid) else UNKNOWN


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _take(fd: int, deadline: float) -> Holder | None:
    """Take the flock on ``fd``: ``None`` once taken, else who holds it.

    A holder writes who it is just after taking the flock, so a contender that arrives in
    between finds no text (or a dead predecessor's): it tries again until ``deadline``, since
    the holder may also let go meanwhile.
    """
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        other = _read_holder(fd)
        if other.pid is not None or time.monotonic() >= deadline:
            return other
        time.sleep(0.01)


class StateLock:
    """This process's hold on a state directory; `release` (or the process's end) lets go."""

    def __init__(self, state_dir: Path, fd: int, info: dict[str, object]) -> None:
        self.state_dir = state_dir
        self._fd: int | None = fd
        self._info = info

    @classmethod
    def acquire(cls, state_dir: Path | str, command: str | None = None) -> StateLock:
        """Take ``state_dir`` (created if missing) for this process.

        Raises:
            StateDirectoryBusy: another process (or another emulator of this one) holds it;
                the message names the holder.
            StorageError: the directory cannot be written (read-only, permissions).
        """
        state_dir = Path(state_dir).resolve()
        path = state_dir / LOCK_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise storage_error(path, exc) from exc
        try:
            busy = _take(fd, time.monotonic() + TEXT_WAIT)
        except BaseException:
            os.close(fd)
            raise
        if busy is not None:
            os.close(fd)
            raise StateDirectoryBusy(_busy_message(state_dir, busy))
        info: dict[str, object] = {"pid": os.getpid(), "command": command or _this_command(),
                                   "since": time.time(), "server": None}
        lock = cls(state_dir, fd, info)
        lock._write()
        return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def publish_server(self, url: str | None) -> None:
        """Tell other processes the dev server's address (``None`` once it stops)."""
        self._info["server"] = url
        self._write()

    def _write(self) -> None:
        if self._fd is None:
            return
        data = json.dumps(self._info).encode()
        with contextlib.suppress(OSError):  # the text is informative; the flock is the lock
            # Written over the old text, then cut to length: never an empty file meanwhile.
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        """Let go of the directory (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _busy_message(state_dir: Path, other: Holder) -> str:
    if other.pid == os.getpid():
        return (f"the state directory {state_dir} is already open in this process "
                f"({other.command}): close that Emulator first, or use another state directory")
    advice = ("its CLI commands can go through its API (they do so by themselves)"
              if other.server else
              "wait for it to finish, or run `workflows-emulator dev` so that commands go "
              "through its API")
    return (f"the state directory {state_dir} is in use by {other.describe()}: only one "
            f"process drives a state directory at a time; {advice}, or use another "
            "--persist-to")


def running_server(state_dir: Path) -> str | None:
    """The base URL of the dev server driving ``state_dir``, if one does."""
    held = holder(state_dir)
    return None if held is None else held.server
