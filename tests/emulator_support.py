"""Helpers the emulator's tests share: a gate to hold a step in flight, log readers, and the
parts to build engine components one at a time (a real store, a host on a virtual clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from workflows_emulator.clock import VirtualClock
from workflows_emulator.durable_object import DurableObjectNamespace
from workflows_emulator.instance_store import InstanceStore
from workflows_emulator.modifiers import InstanceModifier


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


def overlapping_pair() -> tuple[Any, Any]:
    """Two step callbacks returning ``"a"`` and ``"b"``; ``a`` finishes only once ``b`` has
    run, so awaiting both proves they ran at the same time (both were started)."""
    b_ran = asyncio.Event()

    async def a() -> str:
        await b_ran.wait()
        return "a"

    async def b() -> str:
        b_ran.set()
        return "b"

    return a, b


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


def open_store(tmp_path: Path, name: str = "i") -> InstanceStore:
    return InstanceStore.open(DurableObjectNamespace(tmp_path / "instances"), name)


class ClockHost:
    """An `AttemptHost` that never stops and parks by jumping the virtual clock."""

    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.parked_until: list[float] = []
        self.callbacks = 0
        self.modifications: InstanceModifier | None = None

    def stop_requested(self) -> bool:
        return False

    async def checkpoint(self) -> None:
        return None

    async def park_until(self, at: float) -> None:
        self.parked_until.append(at)
        self.clock.advance_to(at)

    def callback_started(self) -> None:
        self.callbacks += 1

    def callback_finished(self) -> None:
        return None

    def modifier(self) -> InstanceModifier | None:
        return self.modifications



def open_files_under(directory: Path) -> list[str]:
    """Files under ``directory`` this process holds open (Linux: read from /proc/self/fd)."""
    root = str(directory.resolve())
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith(root):
            held.append(target)
    return held
