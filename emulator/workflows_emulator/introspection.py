"""Workflow introspection for tests, as ``cloudflare:test`` has it, in Python (snake_case).

``introspect_workflow_instance(workflow, id)`` changes how one instance's steps behave
before or after it is created; ``introspect_workflow(workflow)`` does the same for every
instance created while it is open. Both are awaited (``await introspect_…``) or used as
``async with`` (cleanup as JS's ``await using``): disposing deletes the instances touched
and their modifications, as Cloudflare's does.

Example:
    >>> async with introspect_workflow_instance(env.MODERATOR, "m-1") as instance:  # doctest: +SKIP
    ...     await instance.modify(lambda m: m.mock_step_result({"name": "scan"}, {"score": 0}))
    ...     await env.MODERATOR.create(id="m-1")
    ...     assert await instance.wait_for_step_result({"name": "scan"}) == {"score": 0}
    ...     await instance.wait_for_status("complete")
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from workflows_saga.backend import ErrorRecord, error_from_record

from . import output_gate
from .emulator import Workflow
from .engine import InstanceEngine
from .errors import EmulatorError, InstanceNotFoundError
from .log_fold import step_key
from .modifiers import InstanceModifier, Recorder, Selector, Session, step_id
from .values import fresh

ModifierCallback = Callable[[Any], Awaitable[None] | None]


def _workflow_of(binding: Any) -> Workflow:
    """The emulator's `Workflow` behind ``binding`` (a `Workflow` or a project's ``env.X``)."""
    if isinstance(binding, Workflow):
        return binding
    inner = getattr(binding, "_workflow", None)
    if isinstance(inner, Workflow):
        return inner
    raise TypeError(
        f"[WorkflowIntrospector] expected a workflow binding (env.MY_WORKFLOW) or an emulator "
        f"Workflow, not {type(binding).__name__}")


async def _called(fn: ModifierCallback, modifier: Any) -> None:
    result = fn(modifier)
    if inspect.isawaitable(result):
        await result


class WorkflowInstanceIntrospector:
    """One instance under test (JS ``WorkflowInstanceIntrospector``)."""

    def __init__(self, workflow: Workflow, instance_id: str) -> None:
        if not instance_id:
            raise ValueError("[WorkflowIntrospector] Workflow binding and instance id are "
                             "required.")
        self._workflow = workflow
        self.id = instance_id

    def __await__(self) -> Generator[Any, None, WorkflowInstanceIntrospector]:
        if False:  # pragma: no cover - makes this a generator; nothing to wait for
            yield
        return self

    async def __aenter__(self) -> WorkflowInstanceIntrospector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dispose()

    @property
    def _modifiers(self) -> Any:
        return self._workflow._scheduler.modifiers

    async def modify(self, fn: ModifierCallback) -> WorkflowInstanceIntrospector:
        """Call ``fn(m)`` with this instance's `InstanceModifier` (``fn`` may be async)."""
        modifier: InstanceModifier = self._modifiers.make(self._workflow.name, self.id)
        await _called(fn, modifier)
        return self

    async def _engine(self) -> InstanceEngine:
        try:
            return await self._workflow._handle(self.id)._live_engine()
        except InstanceNotFoundError:
            raise EmulatorError(
                f"[WorkflowIntrospector] instance {self.id!r} of {self._workflow.name!r} has "
                "not been created: create it (env.MY_WORKFLOW.create(id=...)) before waiting "
                "on it") from None

    async def wait_for_step_result(self, step: Selector | str,
                                   timeout: float | None = None) -> Any:
        """The output of step ``{"name", "index"}`` once it succeeded; its error if it failed.

        Raises:
            the step's error (as ``step.do`` would raise it), or `EmulatorError` if the
            instance ends without running the step; `TimeoutError` after ``timeout`` real
            seconds.
        """
        name, index = step_id(step)
        key = step_key("do", name, index)
        engine = await self._engine()

        def settled() -> bool:
            row = engine.store.rows.get(key)
            return (row is not None and row.state in ("success", "failure")) or engine.terminal

        engine.start()
        await self._workflow._scheduler.drive_until(engine, settled, timeout)
        output_gate.open_gate()  # the result shown is on disk
        row = engine.store.rows.get(key)
        if row is None or row.state not in ("success", "failure"):
            ran = [r.label for r in engine.step_rows() if r.kind == "do"]
            raise EmulatorError(
                f"[WorkflowIntrospector] instance {self.id} ended {engine.status} without a "
                f"result for step '{name}' (index {index}); its steps: {ran}")
        if row.state == "failure":
            raise error_from_record(row.error or ErrorRecord("Error", ""))
        return fresh(row.output)

    async def wait_for_status(self, status: str, timeout: float | None = None) -> None:
        """Return once the instance has status ``status``.

        Raises:
            EmulatorError: it reached a finite status that rules ``status`` out.
        """
        if status == "queued":
            return
        reached = (await self._workflow._handle(self.id).wait(until={status},
                                                           timeout=timeout))["status"]
        if reached != status:
            raise EmulatorError(
                f"[WorkflowIntrospector] The Workflow instance {self.id} has reached status "
                f"'{reached}'. This is a finite status that prevents it from ever reaching the "
                f"expected status of '{status}'.")

    async def get_output(self) -> Any:
        """The output of a ``complete`` instance."""
        state = await self._workflow._handle(self.id).status()
        if state["status"] != "complete":
            raise EmulatorError(
                f'Cannot retrieve output: Workflow instance is in status "{state["status"]}" '
                'but must be "complete" to have an output available')
        return state["output"]

    async def get_error(self) -> dict[str, Any]:
        """``{"name", "message"}`` of an ``errored`` instance's error."""
        state = await self._workflow._handle(self.id).status()
        if state["status"] != "errored":
            raise EmulatorError(
                f'Cannot retrieve error: Workflow instance is in status "{state["status"]}" '
                'but must be "errored" to have error information available')
        error: dict[str, Any] = state["error"]
        return error

    async def dispose(self) -> None:
        """Delete the instance and forget its modifications (as Cloudflare's dispose)."""
        self._modifiers.drop(self._workflow.name, self.id)
        try:
            await self._workflow._handle(self.id).delete()
        except (InstanceNotFoundError, EmulatorError):
            pass  # never created, or already gone: nothing to clean up

    # camelCase, so ported tests read as in JS
    waitForStepResult = wait_for_step_result
    waitForStatus = wait_for_status
    getOutput = get_output
    getError = get_error


class WorkflowIntrospector:
    """Every instance of a workflow created while it is open (JS ``WorkflowIntrospector``)."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow
        self._session: Session | None = None
        self._instances: dict[str, WorkflowInstanceIntrospector] = {}

    def _start(self) -> Session:
        if self._session is None:
            self._session = self._workflow._scheduler.modifiers.open_session(self._workflow.name)
        return self._session

    def __await__(self) -> Generator[Any, None, WorkflowIntrospector]:
        self._start()
        if False:  # pragma: no cover - makes this a generator; nothing to wait for
            yield
        return self

    async def __aenter__(self) -> WorkflowIntrospector:
        self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dispose()

    async def modify_all(self, fn: ModifierCallback) -> None:
        """Call ``fn(m)``; what it does to ``m`` applies to every instance created from now."""
        await _called(fn, Recorder(self._start().operations))

    async def get(self) -> list[WorkflowInstanceIntrospector]:
        """An introspector per instance created since this one started, in creation order."""
        for instance_id in self._start().ids:
            if instance_id not in self._instances:
                self._instances[instance_id] = WorkflowInstanceIntrospector(self._workflow,
                                                                            instance_id)
        return list(self._instances.values())

    async def dispose(self) -> None:
        """Stop taking new instances; delete the ones taken and their modifications."""
        if self._session is None:
            return
        await self.get()
        self._workflow._scheduler.modifiers.close_session(self._session)
        for instance in self._instances.values():
            await instance.dispose()
        self._instances.clear()

    modifyAll = modify_all


def introspect_workflow_instance(workflow: Any, instance_id: str) -> WorkflowInstanceIntrospector:
    """Introspect instance ``instance_id`` of ``workflow`` (``env.X`` or a `Workflow`), created
    or not yet: ``await`` it, or use it with ``async with`` to dispose of it at the end."""
    return WorkflowInstanceIntrospector(_workflow_of(workflow), instance_id)


def introspect_workflow(workflow: Any) -> WorkflowIntrospector:
    """Introspect every instance of ``workflow`` created from now on: ``await`` it, or use
    it with ``async with``."""
    return WorkflowIntrospector(_workflow_of(workflow))


introspectWorkflowInstance = introspect_workflow_instance
introspectWorkflow = introspect_workflow

__all__ = ["WorkflowInstanceIntrospector", "WorkflowIntrospector",
           "introspect_workflow", "introspect_workflow_instance"]
