"""Runs a Python Worker project's workflow on the emulator (virtual clock) and traces it.

The project is loaded as ``workflows-emulator dev`` loads it (its wrangler file, modules and
bindings) on a temporary state directory. Each `RunSpec` gets the same treatment as on the
JS side: its faults go through the introspection modifiers (``mock_step_error``,
``force_step_timeout``, ``force_event_timeout``; sleeps and retry delays disabled unless
``keep_delays``), events are sent once the instance waits for their type, and a
terminate-with-rollback is sent once the named step has started. The trace comes from the
emulator's own log (``inst.events()``) and ``status()``; the workflow class is registered
again as a subclass whose ``step`` records what each rollback handler receives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from workflows_saga import Duration, RollbackContext, StepError, WorkflowStep
from workflows_saga.backend import StepBackend, StepCall

from ..emulator import Instance, Workflow
from ..errors import EmulatorError
from ..introspection import introspect_workflow_instance
from ..modifiers import InstanceModifier
from ..project import Project, load_project, open_runtime
from ..workers_shim.env import ExecutionContext
from .js_runner import PortingError, RunSpec, SideResult
from .trace import build_trace, from_emulator_events, handler_view

Views = dict[str, list[dict[str, Any]]]


class _RecordingBackend:
    """A step backend that records what each rollback handler receives, then delegates."""

    def __init__(self, inner: StepBackend, views: list[dict[str, Any]]) -> None:
        self._inner = inner
        self._views = views

    async def do(self, call: StepCall) -> Any:
        if call.rollback is not None:
            handler = call.rollback.handler
            views = self._views

            async def recording(rb: RollbackContext[Any]) -> None:
                err = rb.error
                views.append(handler_view(rb.step_name, rb.output, {
                    "name": getattr(err, "name", None) or type(err).__name__,
                    "message": getattr(err, "message", None) or str(err)}))
                await handler(rb)

            call = dataclasses.replace(
                call, rollback=dataclasses.replace(call.rollback, handler=recording))
        return await self._inner.do(call)

    async def sleep(self, name: str, duration: Duration) -> None:
        await self._inner.sleep(name, duration)

    async def sleep_until(self, name: str, when: datetime | int | float) -> None:
        await self._inner.sleep_until(name, when)

    async def wait_for_event(self, name: str, event_type: str,
                             timeout: Duration) -> dict[str, Any]:
        return await self._inner.wait_for_event(name, event_type, timeout)


def _recording_class(cls: type, views: Views) -> type:
    """A subclass of the user's workflow class whose ``step`` records handler inputs."""
    base: Any = cls

    class Recording(base):  # type: ignore[misc]
        async def run(self, event: dict[str, Any], step: WorkflowStep) -> Any:
            backend = _RecordingBackend(step.backend, views.setdefault(event["instanceId"], []))
            return await super().run(event, WorkflowStep(backend))

    Recording.__name__, Recording.__qualname__ = cls.__name__, cls.__qualname__
    Recording.__module__ = cls.__module__
    return Recording


def _modifications(spec: RunSpec) -> Callable[[InstanceModifier], Awaitable[None]]:
    async def apply(m: InstanceModifier) -> None:
        if not spec.keep_delays:
            await m.disable_sleeps()
            await m.disable_retry_delays()
        for f in spec.faults:
            sel = {"name": f.step, "index": f.index}
            if f.kind == "fail":
                await m.mock_step_error(sel, StepError(f.message, name="Error"), times=f.times)
            elif f.kind == "timeout":
                await m.force_step_timeout(sel, times=f.times)
            else:
                await m.force_event_timeout(sel)
    return apply


async def _drive(inst: Instance, spec: RunSpec) -> dict[str, Any]:
    """Deliver the events, terminate if asked, and return the final status."""
    try:
        for event_type, payload in spec.events:
            await inst.wait_for_event_wait(event_type, timeout=spec.timeout)
            await inst.send_event(event_type, payload)
        if spec.terminate_at is not None:
            await inst.wait_for_step_started(spec.terminate_at, timeout=spec.timeout)
            await inst.terminate(rollback=True)
    except EmulatorError:
        pass  # the instance ended before waiting there; its trace shows where it went
    return await inst.wait(timeout=spec.timeout)


async def _run_one(workflow: Workflow, spec: RunSpec, views: Views) -> SideResult:
    intro = await introspect_workflow_instance(workflow, spec.instance_id)
    await intro.modify(_modifications(spec))
    inst = await workflow.create(id=spec.instance_id, params=spec.params)
    try:
        status = await _drive(inst, spec)
    except TimeoutError:
        return SideResult(error=f"Python side: the instance did not finish within "
                                f"{spec.timeout:g} s (status {(await inst.status())['status']})")
    events = from_emulator_events(inst.events())
    return SideResult(trace=build_trace(events, status, views.get(spec.instance_id, [])))


async def _run_all(project: Project, specs: list[RunSpec], state: Path) -> list[SideResult]:
    views: Views = {}
    async with open_runtime(project, state, clock="virtual") as rt:
        module = rt.module
        limits = {w.name: w.step_limit for w in project.workflows}
        for wf in project.workflows:
            rt.emulator.workflow(_recording_class(getattr(module, wf.class_name), views),
                                 name=wf.name, env=rt.env, ctx=ExecutionContext(),
                                 step_limit=limits[wf.name])
        return [await _run_one(rt.workflows[s.workflow], s, views) for s in specs]


def run_python(project_path: str | Path, specs: list[RunSpec]) -> list[SideResult]:
    """Run each of ``specs`` on the Python project on the emulator; a trace per run."""
    project = load_project(project_path)
    for s in specs:
        project.workflow(s.workflow)  # an unknown name fails here, listing the known ones
    try:
        with tempfile.TemporaryDirectory(prefix="workflows-compare-py-") as scratch:
            results = asyncio.run(_run_all(project, specs, Path(scratch) / "state"))
    except EmulatorError as exc:
        raise PortingError(f"Python side: {exc}") from exc
    for r in results:
        r.engine = "workflows-emulator (virtual clock)"
    return results
