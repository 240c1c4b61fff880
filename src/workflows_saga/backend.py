"""The declared seam for backend authors: what a step backend implements and what it may use.

`WorkflowStep` (what ``run()`` receives) validates every call and hands it to a
`StepBackend` as a `StepCall`. A backend counts step names, caches outputs, retries per the
step's `ResolvedConfig`, stores errors as `ErrorRecord` and rebuilds what ``step.do`` raises
with `error_from_record`, and runs the `RollbackOptions` of started steps, newest first, when
the instance fails. The emulator's engine and the Pyodide backend both implement it;
`workflows_saga.testing.MemoryBackend` is a small in-memory one for tests.

Everything here is pure Python: importing it loads neither ``js``/``pyodide`` nor ``sqlite3``.

The protocol and what it receives:
    `StepBackend`: ``do(call)``, ``sleep``, ``sleep_until``, ``wait_for_event``.
    `StepCall`: one validated ``step.do`` (name, callback, config, rollback options).
    `StepCallback`: the step body, always async, always given a `StepContext`.
    `RollbackOptions`: a validated handler and its ``rollback_config``.
    `RollbackHandler`: the handler, always async, given a `RollbackContext`.
    `StepContext` (``StepContext.build``) and `RollbackContext`: what bodies and handlers get.

Configs and durations:
    `resolve_config` / `ResolvedConfig` / `DEFAULT_RESOLVED`: a step's config merged over
    the defaults, with ``attempts``, ``timeout_ms``, ``retry_delay_ms(failed_attempt)``.
    `DelayFunction`: a dynamic retry delay, called with ``{"ctx", "error"}``.
    `parse_duration_ms` / `duration_ms`: ``"10 seconds"``, numbers, timedeltas in ms.

Errors:
    `ErrorRecord`: ``{"name", "message"}`` as stored (``to_json`` / ``from_json``).
    `record_error`: the record of an exception; `is_non_retryable`: stop retrying it?
    `error_from_record`: what ``step.do`` raises for a record.

Entry points:
    `wrap_run`: wrap a workflow class's ``run`` so it gets your runtime's step object.
    `start_now`: run a callback up to its first suspension at once (as JS does); a task
        only if it suspends.

Step APIs built over `WorkflowStep` (as the emulator's stand-in for the official SDK):
    `ConfigLike`: what ``config=`` / ``rollback_config=`` accept.
    `CTX_PARAMETER`: what a dependency list holds where the step context goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._backend import RollbackHandler, RollbackOptions, StepBackend, StepCall, StepCallback
from ._config import DEFAULT_RESOLVED, DelayFunction, ResolvedConfig, resolve_config
from ._context import RollbackContext, StepContext
from ._durations import duration_ms, parse_duration_ms
from ._records import ErrorRecord, error_from_record, is_non_retryable, record_error

if TYPE_CHECKING:
    from ._eager import start_now
    from ._entrypoint import wrap_run
    from ._step import CTX_PARAMETER, ConfigLike

_LAZY = {"start_now": "_eager", "wrap_run": "_entrypoint", "CTX_PARAMETER": "_step",
         "ConfigLike": "_step"}
"""Loaded on first use: they bring asyncio and inspect, which a reader of records does without."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workflows_saga.backend' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"workflows_saga.{module}"), name)
    globals()[name] = value
    return value

__all__ = [
    "CTX_PARAMETER",
    "DEFAULT_RESOLVED",
    "ConfigLike",
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
    "start_now",
    "wrap_run",
]
