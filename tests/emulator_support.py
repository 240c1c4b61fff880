"""Helpers the emulator's lifecycle tests share: a gate to hold a step in flight, log readers."""

from __future__ import annotations

import asyncio
from typing import Any


class Gate:
    """Lets a test hold a step callback in flight and release it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.entries = 0
        self.finished = 0

    async def __call__(self, value: Any = None) -> Any:
        self.entries += 1
        self.entered.set()
        await self.release.wait()
        self.finished += 1
        return value

    async def until_entered(self) -> None:
        await asyncio.wait_for(self.entered.wait(), 5)


def labels(inst: Any, *events: str) -> list[tuple[str, str | None]]:
    """(event, step) pairs of the instance's log, restricted to ``events`` if given."""
    return [
        (e["event"], e["step"]) for e in inst.events() if not events or e["event"] in events
    ]


def first_ts(inst: Any, event: str, step: str | None = None) -> float:
    """When ``event`` (for ``step``, if given) was first logged."""
    for e in inst.events():
        if e["event"] == event and (step is None or e["step"] == step):
            return float(e["timestamp"])
    raise AssertionError(f"no {event} {step} in {labels(inst)}")
