"""Saga rollbacks for Python Cloudflare Workflows.

``step.do`` gains ``rollback=`` and ``rollback_config=`` (decorator and call forms), the
same code runs under ``workflows_emulator`` on a laptop and inside Pyodide on Cloudflare.

Example:
    >>> from workflows_saga import WorkflowEntrypoint
    >>> class Transfer(WorkflowEntrypoint):
    ...     async def run(self, event, step):
    ...         @step.do("debit")
    ...         async def debit():
    ...             return {"debited": event["payload"]["amount"]}
    ...         @debit.rollback
    ...         async def credit_back(rb):
    ...             ...
    ...         return await debit()

Backend authors (the emulator, the Pyodide backend, test doubles) use `workflows_saga.backend`;
`workflows_saga.testing` has an in-memory backend for testing workflows without an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import DEFAULT_CONFIG, RetryPolicy, RollbackConfig, StepConfig
from ._context import RollbackContext, StepContext
from ._durations import Duration
from ._errors import (
    InvalidStepConfigError,
    NonRetryableError,
    StepError,
    WorkflowsSagaError,
    WorkflowTimeoutError,
)

if TYPE_CHECKING:
    from ._entrypoint import WorkflowEntrypoint
    from ._step import StepFunction, WorkflowStep

__all__ = [
    "DEFAULT_CONFIG",
    "Duration",
    "InvalidStepConfigError",
    "NonRetryableError",
    "RetryPolicy",
    "RollbackConfig",
    "RollbackContext",
    "StepConfig",
    "StepContext",
    "StepError",
    "StepFunction",
    "WorkflowEntrypoint",
    "WorkflowStep",
    "WorkflowTimeoutError",
    "WorkflowsSagaError",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Resolved on first use: inside Pyodide WorkflowEntrypoint subclasses the SDK's class,
    # which must not be imported when workflows_saga is; the step classes bring asyncio and
    # inspect, which a reader of stored records (the emulator's CLI) does without.
    if name == "WorkflowEntrypoint":
        from ._entrypoint import resolve_entrypoint

        value: Any = resolve_entrypoint()
    elif name in ("StepFunction", "WorkflowStep"):
        from . import _step

        value = getattr(_step, name)
    else:
        raise AttributeError(f"module 'workflows_saga' has no attribute {name!r}")
    globals()[name] = value
    return value
