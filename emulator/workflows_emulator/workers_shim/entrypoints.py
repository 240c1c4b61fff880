"""``WorkflowEntrypoint``, ``WorkerEntrypoint``, ``DurableObject``, ``handler``, as in the SDK."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from workflows_saga import StepFunction, WorkflowStep
from workflows_saga.backend import CTX_PARAMETER, ConfigLike, wrap_run

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


class LegacySdkWorkflowStep(SdkWorkflowStep):
    """The SDK's step without implicit dependencies (compat dates before 2026-02-25).

    ``@step.do(name, depends=None, concurrent=False, config=None)``: ``name`` is required and
    non-``ctx`` parameters are filled, in order, from the steps listed in ``depends``.
    """

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self._depends: dict[Callable[..., Any], list[Any] | None] = {}

    def do(  # type: ignore[override]
        self, name: str, depends: list[Any] | None = None, concurrent: bool = False,
        config: ConfigLike = None,
    ) -> Callable[[Callable[..., Any]], StepFunction[Any]]:
        decorate = super().do(name, concurrent=concurrent, config=config)

        def decorator(func: Callable[..., Any]) -> StepFunction[Any]:
            self._depends[func] = depends
            return decorate(func)

        return decorator

    def _dependencies_of(self, func: Callable[..., Any]) -> list[Any]:
        params = list(inspect.signature(func).parameters.values())
        others = [p for p in params if p.name != "ctx"]
        depends = self._depends.get(func)
        if depends is None and others:
            raise TypeError(
                f"Step has {len(others)} non-ctx parameter(s) but no 'depends' list provided")
        if depends is not None and len(depends) != len(others):
            raise TypeError(f"Step declares {len(others)} non-ctx parameter(s) but 'depends' "
                            f"has {len(depends)} item(s)")
        deps: list[Any] = []
        given = iter(depends or ())
        for p in params:
            if p.name == "ctx":
                deps.append(CTX_PARAMETER)
                continue
            dep = next(given)
            if not isinstance(dep, StepFunction):
                raise TypeError(f"'depends' entry for parameter {p.name!r} is not a function "
                                "decorated with step.do")
            deps.append(dep)
        return deps


# Which step API classes defined while a project is imported get (set by `installed`).
implicit_dependencies = True


def _sdk_step_factory(implicit: bool) -> Callable[[Any], Any]:
    cls = SdkWorkflowStep if implicit else LegacySdkWorkflowStep

    def sdk_step(step: Any) -> Any:
        if isinstance(step, WorkflowStep) and not isinstance(step, SdkWorkflowStep):
            return cls(step.backend)
        return step

    return sdk_step


def _wrap_run(cls: type) -> None:
    wrap_run(cls, marker="__sdk_wrapped__", step_for=_sdk_step_factory(implicit_dependencies),
             event_for=python_from_rpc,
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
    """Base class of a Durable Object: ``def __init__(self, ctx, env)``, then RPC methods, an
    optional ``async def fetch(self, request)`` and ``async def alarm(self, alarm_info)``.

    ``ctx`` is the object's `bindings.durable_objects.DurableObjectState` (``ctx.id``,
    ``ctx.storage``, ``ctx.wait_until``, ``ctx.block_concurrency_while``); the namespace
    binding builds one instance per object id.
    """

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env


def handler(func: Callable[..., Any]) -> Callable[..., Any]:
    """The SDK's decorator for ``on_fetch``-style handlers (arguments are already Python here)."""
    return func
