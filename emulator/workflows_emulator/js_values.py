"""What crossing the JS boundary does to values: `JsDict`, ``python_to_rpc/python_from_rpc``.

Shared by the engine (events as the SDK hands them over) and the `workers` stand-in.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


class JsDict(dict[str, Any]):
    """A dict whose keys can also be read as attributes, as the SDK returns JS objects."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def python_to_rpc(value: Any) -> Any:
    """Check ``value`` can cross to JS (as the SDK does) and return it unchanged.

    Raises:
        TypeError: for tuples, bytearrays and awaitables, as on Cloudflare.
    """
    if isinstance(value, tuple | bytearray):
        raise TypeError(f"{type(value).__name__} cannot be sent over RPC.")
    if hasattr(value, "__await__"):
        raise TypeError(f"{type(value).__name__} cannot be sent over RPC.")
    if isinstance(value, dict):
        for item in value.values():
            python_to_rpc(item)
    elif isinstance(value, list):
        for item in value:
            python_to_rpc(item)
    return value


def python_from_rpc(value: Any) -> Any:
    """Turn nested dicts into `JsDict` (datetimes and scalars stay as they are)."""
    if isinstance(value, dict):
        return JsDict({k: python_from_rpc(v) for k, v in value.items()})
    if isinstance(value, list):
        return [python_from_rpc(v) for v in value]
    return value


def round_trip(value: Any, what: str) -> Any:
    """``value`` as the other side of the boundary sees it (through JSON), as `JsDict`s."""
    python_to_rpc(value)
    try:
        text = json.dumps(value, allow_nan=False, default=_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} cannot be sent over RPC: {exc}") from exc
    return python_from_rpc(json.loads(text))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
