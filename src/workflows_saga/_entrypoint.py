"""`WorkflowEntrypoint`: the base class for saga workflows, resolved for the runtime it is in.

Under CPython (the emulator) it is a plain class. Inside Pyodide on Cloudflare it must be a
subclass of the official SDK's ``workers.WorkflowEntrypoint`` so that the runtime treats it as
a Workflow; that class is built on first use, so importing ``workflows_saga`` never imports
``workers``.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

from ._step import WorkflowStep


def in_pyodide() -> bool:
    """True when running inside Pyodide (Cloudflare Python Workers)."""
    return sys.platform == "emscripten"


def as_workflow_step(step: Any) -> WorkflowStep:
    """The step object ``run()`` should see: ours, wrapping the runtime's step if needed."""
    if isinstance(step, WorkflowStep):
        return step
    if in_pyodide():
        from ._pyodide import PyodideStepBackend

        return WorkflowStep(PyodideStepBackend(step))
    raise TypeError(
        f"run() received a step of type {type(step).__name__}; run saga workflows under "
        "workflows_emulator or on Cloudflare"
    )


def wrap_run(
    cls: type,
    *,
    marker: str,
    step_for: Callable[[Any], Any],
    event_for: Callable[[Any], Any] | None = None,
    result_for: Callable[[Any], Any] | None = None,
) -> None:
    """Wrap ``cls.run`` (if ``cls`` defines one) so it gets its step through ``step_for``.

    ``event_for`` and ``result_for`` optionally convert the event and the returned value;
    ``marker`` names the attribute that keeps a class from being wrapped twice.
    """
    run = cls.__dict__.get("run")
    if run is None or getattr(run, marker, False):
        return

    @functools.wraps(run)
    async def wrapped_run(self: Any, event: Any = None, step: Any = None, /) -> Any:
        if event_for is not None and event is not None:
            event = event_for(event)
        result = run(self, event, step_for(step))
        if inspect.isawaitable(result):
            result = await result
        return result_for(result) if result_for is not None else result

    setattr(wrapped_run, marker, True)
    cls.run = wrapped_run  # type: ignore[attr-defined]


def _wrap_run(cls: type) -> None:
    wrap_run(cls, marker="__saga_wrapped__", step_for=as_workflow_step)


class WorkflowEntrypoint:
    """The base class under CPython. Subclass it and define ``async def run(self, event, step)``.

    Attributes:
        ctx: the execution context given by the runtime (``None`` under the emulator's
            Python API).
        env: the Worker's bindings and vars.
    """

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _wrap_run(cls)
        super().__init_subclass__(**kwargs)

    async def run(self, event: dict[str, Any], step: WorkflowStep) -> Any:
        """The workflow body. Override it."""
        raise NotImplementedError("define async def run(self, event, step) in your workflow")


_PLAIN = WorkflowEntrypoint


def _pyodide_entrypoint() -> type:
    import workers  # type: ignore[import-not-found]  # only on Cloudflare, when first asked for

    sdk_base: type = workers.WorkflowEntrypoint

    class WorkflowEntrypoint(sdk_base):  # type: ignore[misc]
        __doc__ = _PLAIN.__doc__

        def __init_subclass__(cls, **kwargs: Any) -> None:
            _wrap_run(cls)  # ours first, so the SDK's own wrapper ends up outermost
            super().__init_subclass__(**kwargs)

    return WorkflowEntrypoint


_resolved: type | None = None


def resolve_entrypoint() -> type:
    """The `WorkflowEntrypoint` class for this runtime (built once)."""
    global _resolved
    if _resolved is None:
        _resolved = _pyodide_entrypoint() if in_pyodide() else _PLAIN
    return _resolved

