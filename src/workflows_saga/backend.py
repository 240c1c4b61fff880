"""The declared seam for backend authors: what a step backend implements and what it may use.

`WorkflowStep` (what ``run()`` receives) validates every call and hands it to a
`StepBackend` as a `StepCall`. A backend counts step names, caches outputs, retries per the
step's `ResolvedConfig`, stores errors as `ErrorRecord` and rebuilds what ``step.do`` raises
with `error_from_record`, and runs the `RollbackOptions` of started steps, newest first, when
the instance fails. The emulator's engine and the Pyodide backend both implement it;
`workflows_saga.testing.MemoryBackend` is a small in-memory one for tests.

Everything here is pure Python: importing it loads neither ``js``/``pyodide`` nor ``sqlite3``.
"""

from __future__ import annotations

from ._backend import RollbackHandler, RollbackOptions, StepBackend, StepCall, StepCallback
from ._config import DEFAULT_RESOLVED, DelayFunction, ResolvedConfig, resolve_config
from ._context import RollbackContext, StepContext
from ._durations import duration_ms, parse_duration_ms
from ._entrypoint import wrap_run
from ._records import ErrorRecord, error_from_record, is_non_retryable, record_error

__all__ = [
    "DEFAULT_RESOLVED",
    "DelayFunction",
    "ErrorRecord",
    "ResolvedConfig",
    "RollbackContext",
    "RollbackHandler",
    "RollbackOptions",
    "StepBackend",
    "StepCall",
    "StepCallback",
    "StepContext",
    "duration_ms",
    "error_from_record",
    "is_non_retryable",
    "parse_duration_ms",
    "record_error",
    "resolve_config",
    "wrap_run",
]
