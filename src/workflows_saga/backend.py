"""The seam for backend authors: what executes steps, and the records it exchanges with the core.

(Provisional: the binding owner replaces this module with the full public seam.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._backend import RollbackHandler, RollbackOptions, StepBackend, StepCall, StepCallback
from ._config import DEFAULT_RESOLVED, ResolvedConfig, resolve_config
from ._entrypoint import wrap_run
from ._errors import error_from_record as _error_from_dict
from ._errors import error_record as _record_dict

__all__ = [
    "DEFAULT_RESOLVED",
    "ErrorRecord",
    "ResolvedConfig",
    "RollbackHandler",
    "RollbackOptions",
    "StepBackend",
    "StepCall",
    "StepCallback",
    "error_from_record",
    "record_error",
    "resolve_config",
    "wrap_run",
]


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """An error as the engine stores and shows it: ``{"name", "message"}``."""

    name: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "message": self.message}

    @classmethod
    def from_json(cls, data: Any) -> ErrorRecord:
        data = data or {}
        return cls(str(data.get("name", "Error")), str(data.get("message", "")))

    @property
    def non_retryable(self) -> bool:
        return self.name == "NonRetryableError"


def record_error(exc: BaseException) -> ErrorRecord:
    return ErrorRecord.from_json(_record_dict(exc))


def error_from_record(record: ErrorRecord) -> Exception:
    return _error_from_dict(record.to_json())
