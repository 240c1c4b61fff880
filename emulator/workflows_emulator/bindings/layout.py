"""Where each binding's data lives inside the state directory (as miniflare, one store each).

``<state>/kv/<namespace id>.sqlite``, ``<state>/d1/<database id>.sqlite``,
``<state>/r2/<bucket>/`` (``objects.sqlite`` plus ``blobs/``) and
``<state>/do/<ClassName>/<object id>.sqlite``. Names are checked so no config value can
point outside the state directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ProjectConfigError
from .config import D1Config, KvConfig, R2Config

_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


def _safe(value: str, what: str) -> str:
    if not _SAFE.fullmatch(value) or ".." in value:
        raise ProjectConfigError(
            f"{what} {value!r} cannot name a file in the state directory; use letters, digits, "
            "'_', '-' and '.'")
    return value


def kv_path(state: Path, kv: KvConfig) -> Path:
    """The SQLite file of a KV namespace."""
    return state / "kv" / f"{_safe(kv.id, 'KV namespace id')}.sqlite"


def d1_path(state: Path, d1: D1Config) -> Path:
    """The SQLite file of a D1 database."""
    return state / "d1" / f"{_safe(d1.database_id, 'D1 database_id')}.sqlite"


def r2_root(state: Path, r2: R2Config) -> Path:
    """The folder of an R2 bucket."""
    return state / "r2" / _safe(r2.bucket_name, "R2 bucket_name")


def do_dir(state: Path, class_name: str) -> Path:
    """The folder of a Durable Object class's objects."""
    return state / "do" / _safe(class_name, "Durable Object class_name")
