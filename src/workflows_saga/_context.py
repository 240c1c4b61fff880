"""What step callbacks and rollback handlers receive: `StepContext` and `RollbackContext`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class StepContext(dict[str, Any]):
    """A step's context, shaped like the SDK's ``ctx`` dict, with typed accessors.

    ``ctx["step"]["name"]``, ``ctx["step"]["count"]``, ``ctx["attempt"]`` and
    ``ctx["config"]`` work as with the official SDK; so do ``ctx.name``, ``ctx.count``,
    ``ctx.attempt`` and ``ctx.config``.
    """

    @classmethod
    def build(
        cls, name: str, count: int, attempt: int, config: Mapping[str, Any]
    ) -> StepContext:
        """Make a context for attempt ``attempt`` of step ``name`` number ``count``."""
        return cls(step={"name": name, "count": count}, attempt=attempt, config=config)

    @property
    def name(self) -> str:
        """The step's name as given to ``step.do``."""
        return str(self["step"]["name"])

    @property
    def count(self) -> int:
        """1 for the first ``step.do`` with this name in the run, 2 for the second, ..."""
        return int(self["step"]["count"])

    @property
    def attempt(self) -> int:
        """1 on the first try, 2 on the first retry, ..."""
        return int(self["attempt"])

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config: the step's own merged over the defaults."""
        return dict(self["config"])


@dataclass(frozen=True)
class RollbackContext(Generic[T]):
    """The one argument a rollback handler receives (a handler may also take none).

    Attributes:
        output: what the forward step returned, or ``None`` if it never returned
            (it failed, or was still running when the instance failed or was terminated).
        error: the error that failed the instance (or the termination error), as
            ``step.do`` would raise it, always with ``.name`` and ``.message`` as in JS.
        ctx: the forward step's context (name, count, attempt, resolved config).
        step_name: ``"<name>-<count>"``.
    """

    output: T | None
    error: BaseException
    ctx: StepContext
    step_name: str
