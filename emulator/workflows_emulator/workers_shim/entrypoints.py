"""``WorkflowEntrypoint``, ``WorkerEntrypoint``, ``DurableObject``, ``handler``, as in the SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflows_saga import WorkflowStep
from workflows_saga._entrypoint import wrap_run
from workflows_saga._step import ConfigLike, StepFunction

from .rpc import python_from_rpc, python_to_rpc


class SdkWorkflowStep(WorkflowStep):
    """The ``step`` a plain ``workers.WorkflowEntrypoint`` sees: the official SDK's API only.

    ``@step.do(name=None, *, concurrent=False, config=None)``, ``sleep``, ``sleep_until`` and
    ``wait_for_event``. Rollback options are refused, as the SDK has none: subclass
    ``workflows_saga.WorkflowEntrypoint`` for them.
    """

    def do(  # type: ignore[override]
        self, name: str | None = None, *, concurrent: bool = False, config: ConfigLike = None,
        **extra: Any,
    ) -> Callable[[Callable[..., Any]], StepFunction[Any]]:
        if extra:
            raise TypeError(
                f"step.do() got unexpected keyword argument(s) {sorted(extra)}: the official "
                "SDK's step has no rollback options; subclass workflows_saga.WorkflowEntrypoint "
                "to use rollback="
            )
        if name is not None and not isinstance(name, str):
            raise TypeError("step.do(name=None, *, concurrent=False, config=None): use it as "
                            "@step.do() or @step.do(\"name\")")
        return super().do(name, concurrent=concurrent, config=config)


def _sdk_step(step: Any) -> Any:
    if isinstance(step, WorkflowStep) and not isinstance(step, SdkWorkflowStep):
        return SdkWorkflowStep(step.backend)
    return step


def _wrap_run(cls: type) -> None:
    wrap_run(cls, marker="__sdk_wrapped__", step_for=_sdk_step, event_for=python_from_rpc,
             result_for=lambda result: None if result is None else python_to_rpc(result))


class WorkflowEntrypoint:
    """Base class of a Workflow: define ``async def run(self, event, step)``."""

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _wrap_run(cls)
        super().__init_subclass__(**kwargs)


class WorkerEntrypoint:
    """Base class of a Worker: define ``async def fetch(self, request)``."""

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env


class DurableObject:
    """Base class of a Durable Object (its bindings are not emulated: only the class imports)."""

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env


def handler(func: Callable[..., Any]) -> Callable[..., Any]:
    """The SDK's decorator for ``on_fetch``-style handlers (arguments are already Python here)."""
    return func
