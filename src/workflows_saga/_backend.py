"""The step-backend protocol and the call records it receives (public in `workflows_saga.backend`).

`WorkflowStep` (the API users see) turns every call into one of the four operations of
`StepBackend`. The emulator's engine implements it in CPython; on Cloudflare,
``workflows_saga._pyodide`` implements it over the runtime's JS step object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ._config import StepConfig
from ._context import RollbackContext, StepContext
from ._durations import Duration

StepCallback = Callable[[StepContext], Awaitable[Any]]
"""A step body as backends see it: always async, always given the context."""

RollbackHandler = Callable[[RollbackContext[Any]], Awaitable[None]]
"""A rollback handler as backends see it: always async."""


@dataclass(frozen=True)
class RollbackOptions:
    """A validated ``{rollback, rollbackConfig}`` pair."""

    handler: RollbackHandler
    config: StepConfig | None = None


@dataclass(frozen=True)
class StepCall:
    """One validated ``step.do`` call."""

    name: str
    callback: StepCallback
    config: StepConfig | None = None
    rollback: RollbackOptions | None = None


@runtime_checkable
class StepBackend(Protocol):
    """What executes steps. Implementations count names, cache, retry and roll back."""

    async def do(self, call: StepCall) -> Any:
        """Run (or replay) one step and return its output, or raise its final error."""
        ...

    async def sleep(self, name: str, duration: Duration) -> None:
        """Sleep durably for ``duration``."""
        ...

    async def sleep_until(self, name: str, when: datetime | int | float) -> None:
        """Sleep durably until ``when`` (a datetime, or epoch milliseconds)."""
        ...

    async def wait_for_event(
        self, name: str, event_type: str, timeout: Duration
    ) -> dict[str, Any]:
        """Wait for an event of ``event_type``; return ``{"payload", "timestamp", "type"}``."""
        ...
