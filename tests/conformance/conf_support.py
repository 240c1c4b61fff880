"""Helpers the conformance tier shares: log readers, a one-method workflow and a gate.

The ported tests read the emulator's log (``inst.events()``) where Cloudflare's tests read the
engine's ``readLogs()``: ``e["event"]`` is ``log.event``, ``e["step"]`` is ``log.target``
(``"<name>-<count>"``) and ``e["data"]`` is ``log.metadata``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from workflows_saga import WorkflowEntrypoint

SDK = "workers-sdk packages/workflows-shared/tests/"
PY_SDK = "workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py"


def make(body: Any, cls_name: str = "Conf") -> type:
    """A workflow class whose ``run`` is ``body(event, step)`` (like setTestWorkflowCallback)."""

    async def run(self: Any, event: Any, step: Any) -> Any:
        return await body(event, step)

    return type(cls_name, (WorkflowEntrypoint,), {"run": run})


def _log(inst: Any) -> list[dict[str, Any]]:
    return inst if isinstance(inst, list) else inst.events()


def count(inst: Any, event: str) -> int:
    """How many ``event`` entries an instance's log (or a copy of it) holds (countOf)."""
    return sum(1 for e in _log(inst) if e["event"] == event)


def targets(inst: Any, event: str) -> list[str | None]:
    """The targets (``"<name>-<count>"``) of the ``event`` entries, oldest first (targetsOf)."""
    return [e["step"] for e in _log(inst) if e["event"] == event]


def first(inst: Any, event: str) -> dict[str, Any]:
    """The first ``event`` entry (``logs.find``)."""
    for e in inst.events():
        if e["event"] == event:
            return e
    raise AssertionError(f"no {event} in {[e['event'] for e in inst.events()]}")


class Gate:
    """Holds a step callback in flight (``scheduler.wait(500)`` in the sources) until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.entries = 0

    async def __call__(self, value: Any = None) -> Any:
        self.entries += 1
        self.entered.set()
        await self.release.wait()
        return value

    async def until_entered(self) -> None:
        await asyncio.wait_for(self.entered.wait(), 5)
