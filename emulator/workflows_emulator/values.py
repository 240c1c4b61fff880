"""What may cross the engine: JSON values up to 1 MiB, and valid ids, names and event types.

Values are stored as JSON text and measured in its UTF-8 bytes, as Cloudflare measures the
serialised value (non-ASCII text is not inflated by ``\\uXXXX`` escapes). A ``datetime``
crosses as a JS ``Date`` does on Cloudflare (the Python SDK turns one into the other both
ways): it is stored tagged, ``{"$workflows-emulator:date": epoch ms}``, comes back as a
``datetime``, and is shown as an ISO 8601 string.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import WorkflowError

MAX_VALUE_BYTES = 1 << 20
# Used with ``fullmatch``: ``match`` with a ``$`` anchor lets a trailing newline through.
EVENT_TYPE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_-]{0,99}")
ID_PATTERN = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_-]*")
MAX_ID = 100
MAX_ADDRESSABLE_ID = 271
ADDRESSABLE_ID = re.compile(r"[a-zA-Z0-9, */#_-]+")
"""Ids ``get()`` looks up: created ids, and the ids Cloudflare gives cron-triggered instances."""
MAX_NAME = 64
_NOT_RPC = (tuple, bytearray, bytes, set, frozenset)


class UnserialisableOutput(WorkflowError):
    """A step returned a value that cannot be stored (the instance is aborted)."""


class OutputTooLarge(Exception):
    """A step output over 1 MiB (recorded as a ``WorkflowInternalError``)."""

    workflows_error_name = "WorkflowInternalError"


_DATE = "$workflows-emulator:date"
"""The tag of a stored datetime (a key no user data is expected to use)."""


def as_datetime(epoch_ms: float) -> datetime:
    """A JS ``Date`` as the Python SDK hands it over inside a Worker, whose clock is UTC:
    a naive ``datetime`` in UTC (the same on every laptop, whatever its time zone)."""
    return datetime.fromtimestamp(epoch_ms / 1000.0, UTC).replace(tzinfo=None)


def as_epoch_ms(value: datetime) -> float:
    """The JS ``Date`` of ``value`` (a naive one is taken as UTC, as in a Worker)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.timestamp() * 1000.0


def _tagged(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATE: as_epoch_ms(value)}
    raise TypeError(f"{type(value).__name__} cannot be sent over RPC")


def _untagged(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and isinstance(obj.get(_DATE), int | float):
        return as_datetime(obj[_DATE])
    return obj


# One encoder and one decoder, made once: json.dumps / json.loads with options build new ones
# on every call, which shows on the per-step path.
_ENCODER = json.JSONEncoder(allow_nan=False, default=_tagged, ensure_ascii=False)
_DECODER = json.JSONDecoder(object_hook=_untagged)
_PLAIN_DECODER = json.JSONDecoder()
"""For text without a tagged date (nearly all): no Python hook called for every object."""
_DIGITS = b"0123456789"
_LONG_NUMBER = re.compile(r"[0-9]{19}")
"""As many digits in a row as an integer orjson reads as a float (beyond 64 bits) has."""
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _encoded(value: Any) -> tuple[str, int]:
    """``value`` as stored JSON and its size in UTF-8 bytes, the size Cloudflare limits.

    Text stays as it is rather than ``\\uXXXX``-escaped, so 400 KB of Chinese or emoji counts
    as 400 KB. A lone surrogate (which JS strings and JSON can hold but UTF-8, and so SQLite,
    cannot) stays escaped: every value valid JSON can hold is stored, and loads back the same.
    """
    text = _ENCODER.encode(value)
    if text.isascii():  # O(1) in CPython: the common case costs nothing more
        return text, len(text)
    try:
        return text, len(text.encode())
    except UnicodeEncodeError:
        text = _LONE_SURROGATE.sub(_escaped, text)  # raw surrogates occur only inside strings
        return text, len(text.encode())


def dumps(value: Any) -> str:
    """``value`` as stored JSON (datetimes tagged, text as UTF-8 but lone surrogates escaped);
    `TypeError` / `ValueError` if it can't be."""
    return _encoded(value)[0]


def loads(text: str | bytes) -> Any:
    """A stored JSON value, datetimes restored.

    Read by orjson (several times faster: a long instance's log is 40,000 entries) unless
    the text holds a tagged date (orjson has no object hook) or 19 digits in a row (an
    integer beyond 64 bits, which orjson reads as a float); what orjson refuses (``NaN``,
    ``1e400``, a lone surrogate, deep nesting) the standard library reads, or refuses, as
    it always did. Both give the same value for everything else.
    """
    if not isinstance(text, str):
        text = text.decode()
    if _DATE in text:
        return _DECODER.decode(text)
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # a lone surrogate, which orjson cannot read
        return _PLAIN_DECODER.decode(text)
    # Counting the digits first: far cheaper than the search, and nearly always enough.
    if (len(raw) < 19 or len(raw) - len(raw.translate(None, _DIGITS)) < 19
            or not _LONG_NUMBER.search(text)):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _PLAIN_DECODER.decode(text)


def shown(value: Any) -> Any:
    """JSON's ``default`` for showing values to people and HTTP clients: a datetime as JS's
    ``Date.toJSON()`` writes it; anything else as text."""
    if isinstance(value, datetime):
        moment = datetime.fromtimestamp(as_epoch_ms(value) / 1000.0, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def fault(value: Any, where: str) -> str | None:
    """Where in ``value`` the first thing that can't be stored is, and what it is."""
    if isinstance(value, _NOT_RPC):
        return f"{where} is of type {type(value).__name__}, which cannot be sent over RPC"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has the key {key!r}: keys must be strings"
            found = fault(item, f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = fault(item, f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return f"{where} is {value!r}, which JSON cannot hold"
    if value is None or isinstance(value, str | int | float | bool | datetime):
        return None
    return f"{where} is of type {type(value).__name__}, which cannot be sent over RPC"


def encode_step_output(value: Any, label: str) -> str:
    """``value`` as stored JSON, or `UnserialisableOutput` / `OutputTooLarge`."""
    if isinstance(value, _NOT_RPC):
        raise UnserialisableOutput(f"{type(value).__name__} cannot be sent over RPC.")
    try:
        encoded, size = _encoded(value)
    except (TypeError, ValueError) as exc:
        raise UnserialisableOutput(fault(value, "the output") or str(exc)) from exc
    if size > MAX_VALUE_BYTES:
        raise OutputTooLarge(f"Step {label} output is too large. Maximum allowed size is 1MiB.")
    return encoded


def encode_value(value: Any, *, what: str) -> str:
    """``value`` (params, an event payload, the workflow's output) as JSON, or `WorkflowError`."""
    if isinstance(value, _NOT_RPC):
        raise WorkflowError(f"{what}: {type(value).__name__} cannot be sent over RPC.")
    try:
        encoded, size = _encoded(value)
    except (TypeError, ValueError) as exc:
        raise WorkflowError(
            f"{what} is not serialisable: {fault(value, what) or exc}") from exc
    if size > MAX_VALUE_BYTES:
        raise WorkflowError(f"{what} is too large. Maximum allowed size is 1MiB.")
    return encoded


def fresh(value: Any) -> Any:
    """A copy of a stored value that the caller may change without changing the record."""
    if isinstance(value, dict | list):
        return loads(dumps(value))
    return value


def event_value(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored event as ``wait_for_event`` returns it: ``{payload, timestamp, type}``."""
    return {**stored, "timestamp": as_datetime(stored["timestamp"])}


def validate_event_type(event_type: object) -> str:
    """Check an event type as Cloudflare does."""
    if not isinstance(event_type, str) or not EVENT_TYPE.fullmatch(event_type):
        raise WorkflowError(
            f"(workflow.invalid_event_type) invalid event type {event_type!r}: up to 100 "
            "characters from a-z, A-Z, 0-9, '-' and '_' (no '.'), not starting with '-'"
        )
    return event_type


def _fits(value: object, pattern: re.Pattern[str], longest: int) -> bool:
    return isinstance(value, str) and len(value) <= longest and bool(pattern.fullmatch(value))


def validate_instance_id(instance_id: object) -> str:
    """Check an instance id as Cloudflare does (``Workflow instance has invalid id``)."""
    if not _fits(instance_id, ID_PATTERN, MAX_ID):
        raise WorkflowError(
            f"Workflow instance has invalid id: {instance_id!r}. Use 1-{MAX_ID} characters "
            "from a-z, A-Z, 0-9, '-' and '_', not starting with '-'"
        )
    return str(instance_id)


def is_addressable_id(instance_id: object) -> bool:
    """Whether ``get()`` may look ``instance_id`` up, as Cloudflare decides (cron-made ids
    included)."""
    return _fits(instance_id, ADDRESSABLE_ID, MAX_ADDRESSABLE_ID)


def validate_addressable_id(instance_id: object) -> str:
    """Check an id that ``get()`` looks up, as Cloudflare does (cron-made ids included)."""
    if not is_addressable_id(instance_id):
        raise WorkflowError(
            f"Workflow instance has invalid id: {instance_id!r}. Use 1-{MAX_ADDRESSABLE_ID} "
            "characters from a-z, A-Z, 0-9, space, ',', '*', '/', '#', '-' and '_'"
        )
    return str(instance_id)


def validate_workflow_name(name: object) -> str:
    """Check a workflow name as wrangler does."""
    if not _fits(name, ID_PATTERN, MAX_NAME):
        raise WorkflowError(
            f"invalid workflow name {name!r}: use 1-{MAX_NAME} characters from a-z, A-Z, "
            "0-9, '-' and '_', not starting with '-'"
        )
    return str(name)
