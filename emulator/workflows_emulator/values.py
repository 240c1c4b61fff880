"""What may cross the engine: JSON values up to 1 MiB, and valid ids, names and event types."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from .errors import WorkflowError

MAX_VALUE_BYTES = 1 << 20
EVENT_TYPE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_-]{0,99}$")
ID_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_-]*$")
MAX_ID = 100
MAX_NAME = 64
_NOT_RPC = (tuple, bytearray, bytes, set, frozenset)


class UnserialisableOutput(WorkflowError):
    """A step returned a value that cannot be stored (the instance is aborted)."""


class OutputTooLarge(Exception):
    """A step output over 1 MiB (recorded as a ``WorkflowInternalError``)."""

    workflows_error_name = "WorkflowInternalError"


def encode_step_output(value: Any, label: str) -> str:
    """``value`` as stored JSON, or `UnserialisableOutput` / `OutputTooLarge`."""
    if isinstance(value, _NOT_RPC):
        raise UnserialisableOutput(f"{type(value).__name__} cannot be sent over RPC.")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UnserialisableOutput(str(exc)) from exc
    if len(encoded) > MAX_VALUE_BYTES // 4 and len(encoded.encode()) > MAX_VALUE_BYTES:
        raise OutputTooLarge(f"Step {label} output is too large. Maximum allowed size is 1MiB.")
    return encoded


def encode_value(value: Any, *, what: str) -> str:
    """``value`` (params, an event payload, the workflow's output) as JSON, or `WorkflowError`."""
    if isinstance(value, _NOT_RPC):
        raise WorkflowError(f"{what}: {type(value).__name__} cannot be sent over RPC.")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WorkflowError(f"{what} is not JSON-serialisable: {exc}") from exc
    if len(encoded.encode()) > MAX_VALUE_BYTES:
        raise WorkflowError(f"{what} is too large. Maximum allowed size is 1MiB.")
    return encoded


def fresh(value: Any) -> Any:
    """A copy of a stored value that the caller may change without changing the record."""
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value))
    return value


def event_value(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored event as ``wait_for_event`` returns it: ``{payload, timestamp, type}``."""
    return {**stored, "timestamp": datetime.fromtimestamp(stored["timestamp"] / 1000.0)}


def validate_event_type(event_type: object) -> str:
    """Check an event type as Cloudflare does."""
    if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
        raise WorkflowError(
            f"(workflow.invalid_event_type) invalid event type {event_type!r}: up to 100 "
            "characters from a-z, A-Z, 0-9, '-' and '_' (no '.'), not starting with '-'"
        )
    return event_type


def validate_instance_id(instance_id: object) -> str:
    """Check an instance id as Cloudflare does (``Workflow instance has invalid id``)."""
    if (
        not isinstance(instance_id, str)
        or len(instance_id) > MAX_ID
        or not ID_PATTERN.match(instance_id)
    ):
        raise WorkflowError(
            f"Workflow instance has invalid id: {instance_id!r}. Use 1-{MAX_ID} characters "
            "from a-z, A-Z, 0-9, '-' and '_', not starting with '-'"
        )
    return instance_id


def validate_workflow_name(name: object) -> str:
    """Check a workflow name as wrangler does."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not ID_PATTERN.match(name):
        raise WorkflowError(
            f"invalid workflow name {name!r}: use 1-{MAX_NAME} characters from a-z, A-Z, "
            "0-9, '-' and '_', not starting with '-'"
        )
    return name
