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


def _wrap_run(cls: type) -> None:
    run = cls.__dict__.get("run")
    if run is None or getattr(run, "__saga_wrapped__", False):
        return

    @functools.wraps(run)
    async def run_with_saga_step(self: Any, event: Any = None, step: Any = None, /) -> Any:
        result = run(self, event, as_workflow_step(step))
        if inspect.isawaitable(result):
            result = await result
        return result

    run_with_saga_step.__saga_wrapped__ = True  # type: ignore[attr-defined]
    cls.run = run_with_saga_step  # type: ignore[attr-defined]


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

