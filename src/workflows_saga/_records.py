"""Error records: how a step's error is stored (`ErrorRecord`) and rebuilt for ``step.do``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import NonRetryableError, StepError, WorkflowTimeoutError

KEEPS_PYTHON_TYPE: dict[str, type[Exception]] = {
    "NonRetryableError": NonRetryableError,
    "TypeError": TypeError,
    "ValueError": ValueError,
}
"""The errors that come back out of ``step.do`` as themselves on Cloudflare."""

NON_RETRYABLE = "NonRetryableError"


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A step's or a handler's error as the engine keeps it: Cloudflare's name and the message.

    Example:
        >>> ErrorRecord.from_json({"name": "KeyError", "message": "'x'"}).to_json()
        {'name': 'KeyError', 'message': "'x'"}
    """

    name: str
    message: str

    def to_json(self) -> dict[str, str]:
        """The stored form, ``{"name", "message"}`` (as the engine logs and Cloudflare reports)."""
        return {"name": self.name, "message": self.message}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ErrorRecord:
        """Read a stored ``{"name", "message"}`` (missing keys or ``None``: ``"Error"``, ``""``)."""
        data = data or {}
        return cls(str(data.get("name", "Error")), str(data.get("message", "")))

    @property
    def non_retryable(self) -> bool:
        """Whether the engine must not retry this error (same as `is_non_retryable`)."""
        return self.name == NON_RETRYABLE


def record_error(exc: BaseException) -> ErrorRecord:
    """``exc`` as the engine stores it.

    The name is Cloudflare's where an error class declares one (``workflows_error_name``);
    any `NonRetryableError` (a subclass, or one given another ``name``) is recorded as
    ``NonRetryableError``, as workers-sdk's ``PreservedNonRetryableError`` and the Python SDK's
    bridge record it; an error whose message starts with ``NonRetryableError`` counts as
    one, as on Cloudflare, and is reported without that prefix.
    """
    if isinstance(exc, StepError):
        name, message = exc.name, exc.message
    elif isinstance(exc, NonRetryableError):  # non-retryable by class, whatever its name
        name, message = NON_RETRYABLE, str(exc)
    else:
        name = getattr(type(exc), "workflows_error_name", None) or type(exc).__name__
        message = str(exc)
    if name != NON_RETRYABLE and message.startswith(NON_RETRYABLE):
        name, message = NON_RETRYABLE, message[len(NON_RETRYABLE):].lstrip(":").lstrip()
    return ErrorRecord(name, message)


def is_non_retryable(record: ErrorRecord) -> bool:
    """Whether the engine must not retry the error behind ``record``."""
    return record.non_retryable


def error_from_record(record: ErrorRecord) -> Exception:
    """The error ``step.do`` raises for ``record``.

    ``NonRetryableError``, ``TypeError`` and ``ValueError`` keep their type,
    ``WorkflowTimeoutError`` is the engine's own; anything else is a `StepError` with the
    original name and message. Whatever the type, the error has ``.name`` and ``.message``
    (set on the instance for ``TypeError`` and ``ValueError``), as a JS error has, so a
    handler can read ``rb.error.name`` / ``rb.error.message``; ``str(error)`` is unchanged.
    """
    name, message = record.name, record.message
    if message.startswith(NON_RETRYABLE):
        name = NON_RETRYABLE
    if name == "WorkflowTimeoutError":
        return WorkflowTimeoutError(message)
    if name == NON_RETRYABLE:
        return NonRetryableError(message)
    cls = KEEPS_PYTHON_TYPE.get(name)
    if cls is None:
        return StepError(message, name=name)
    error = cls(message)
    error.name = name  # type: ignore[attr-defined]
    error.message = message  # type: ignore[attr-defined]
    return error
