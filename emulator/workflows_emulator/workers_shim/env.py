"""``env`` as a Python Worker sees it: Workflow bindings, vars, and the execution context."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..emulator import Instance, Workflow
from .rpc import JsDict, python_to_rpc, round_trip

if TYPE_CHECKING:
    from ..project import Project


def _options(options: Mapping[str, Any] | None, kwargs: dict[str, Any],
             what: str) -> dict[str, Any]:
    # Pyodide turns trailing kwargs into one options object; a positional dict is the same.
    merged = dict(options or {})
    merged.update(kwargs)
    return dict(round_trip(merged, what)) if merged else {}


class WorkflowInstance:
    """``WorkflowInstance`` through the SDK's wrapper: ``id``, status, lifecycle, send_event."""

    def __init__(self, instance: Instance) -> None:
        self._instance = instance
        self.id = instance.id

    def __repr__(self) -> str:
        return f"WorkflowInstance(id={self.id!r})"

    async def status(self) -> JsDict:
        """``{"status", "error", "output", "rollback"}`` as a `JsDict`."""
        return JsDict(round_trip(await self._instance.status(), "status"))

    async def pause(self) -> None:
        """Pause the instance."""
        await self._instance.pause()

    async def resume(self) -> None:
        """Resume a paused instance."""
        await self._instance.resume()

    async def terminate(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Terminate; ``terminate(rollback=True)`` runs rollback handlers first."""
        opts = _options(options, kwargs, "terminate options")
        await self._instance.terminate(rollback=bool(opts.get("rollback", False)))

    async def restart(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Restart; ``restart({"from": {"name": ..., "count": 1, "type": "do"}})``."""
        opts = _options(options, kwargs, "restart options")
        await self._instance.restart(opts.get("from") or opts.get("from_"))

    async def send_event(self, options: Mapping[str, Any] | None = None, /,
                         **kwargs: Any) -> None:
        """``send_event(type="approved", payload={...})``."""
        opts = _options(options, kwargs, "send_event options")
        if "type" not in opts:
            raise TypeError("send_event(type=..., payload=...): type is required")
        await self._instance.send_event(opts["type"], opts.get("payload"))

    sendEvent = send_event

    async def delete(self) -> None:
        """Delete the instance."""
        await self._instance.delete()


class WorkflowBinding:
    """``env.MY_WORKFLOW`` through the SDK's wrapper: create, create_batch, get."""

    def __init__(self, workflow: Workflow | None = None) -> None:
        self._workflow = workflow

    def attach(self, workflow: Workflow) -> None:
        """Point the binding at its registered workflow."""
        self._workflow = workflow

    @property
    def _wf(self) -> Workflow:
        if self._workflow is None:
            raise RuntimeError("binding used before the emulator registered its workflow")
        return self._workflow

    async def create(self, options: Mapping[str, Any] | None = None, /,
                     **kwargs: Any) -> WorkflowInstance:
        """``await env.MY_WORKFLOW.create(id=..., params={...})``."""
        opts = _options(options, kwargs, "create options")
        unknown = set(opts) - {"id", "params", "retention"}
        if unknown:
            raise TypeError(f"create() got unknown option(s) {sorted(unknown)}: use id, params")
        return WorkflowInstance(await self._wf.create(id=opts.get("id"), params=opts.get("params")))

    async def create_batch(self, batch: Iterable[Mapping[str, Any]]) -> list[WorkflowInstance]:
        """Create up to 100 instances; existing ids are skipped."""
        items = [_options(item, {}, "create_batch item") for item in batch]
        return [WorkflowInstance(i) for i in await self._wf.create_batch(items)]

    createBatch = create_batch

    async def get(self, id: str) -> WorkflowInstance:
        """The instance ``id``."""
        return WorkflowInstance(await self._wf.get(id))


class Env:
    """The Worker's bindings and vars as attributes (``env.MY_WORKFLOW``, ``env.API_URL``)."""

    def __init__(self, source: str, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        try:
            return values[name]
        except KeyError:
            known = ", ".join(sorted(values)) or "none"
            raise AttributeError(
                f"env has no binding or var {name!r} (defined in {self._source}: {known}); "
                "declare it in the wrangler file ([vars], [[workflows]], [[kv_namespaces]], "
                "[[d1_databases]], ...) or supply a double (README, Bindings)"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __dir__(self) -> list[str]:
        return sorted(self._values)


class ExecutionContext:
    """``ctx``: ``wait_until`` keeps work alive after the response."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Run ``awaitable`` in the background."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    waitUntil = wait_until

    def pass_through_on_exception(self) -> None:
        """Accepted; the emulator has no origin to pass through to."""

    passThroughOnException = pass_through_on_exception


def make_env(project: Project, others: Mapping[str, Any] | None = None
             ) -> tuple[Env, dict[str, WorkflowBinding]]:
    """An env with the project's vars, one (unattached) binding per ``[[workflows]]`` and
    ``others`` (the opened stores and doubles, which win over a workflow of the same name)."""
    bindings = {wf.binding: WorkflowBinding() for wf in project.workflows}
    values: dict[str, Any] = {k: python_to_rpc(v) for k, v in project.vars.items()}
    values.update(bindings)
    values.update(others or {})
    return Env(str(project.config_path), values), bindings
