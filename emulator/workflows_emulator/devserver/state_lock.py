"""The state directory's lock file: one dev server per directory, and how the CLI finds it."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ProjectConfigError

LOCK_FILE = "devserver.json"


def running_server(state_dir: Path) -> str | None:
    """The URL of a live dev server holding ``state_dir``, if there is one."""
    try:
        info = json.loads((state_dir / LOCK_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"http://{info['ip']}:{info['port']}"


@contextlib.contextmanager
def holding(state_dir: Path) -> Iterator[Callable[[str, int], None]]:
    """Claim ``state_dir`` for this process; yield ``write(ip, port)`` to publish the address.

    Raises:
        ProjectConfigError: another live dev server holds the directory.
    """
    other = running_server(state_dir)
    if other is not None:
        raise ProjectConfigError(
            f"another dev server ({other}) is using {state_dir}; stop it, or pass another "
            "--persist-to"
        )
    lock = state_dir / LOCK_FILE

    def write(ip: str, port: int) -> None:
        lock.write_text(json.dumps({"pid": os.getpid(), "ip": ip, "port": port}))

    try:
        yield write
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
