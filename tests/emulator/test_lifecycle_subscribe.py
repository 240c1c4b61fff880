"""Lifecycle: following an instance's events with ``subscribe()`` (issue 3, reference 3.6, 4.3)."""

from __future__ import annotations

import asyncio
from typing import Any

from workflows_emulator import Emulator
from workflows_saga import NonRetryableError, WorkflowEntrypoint


async def collect(inst: Any, timeout: float = 10) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [ev async for ev in inst.subscribe()]

    return await asyncio.wait_for(run(), timeout)


def boom() -> None:
    raise NonRetryableError("card declined")


class Saga(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("reserve", lambda: {"seat": 1}, rollback=lambda rb: None)
        await step.do("plain", lambda: 2)
        await step.do("charge", boom, rollback=lambda rb: None)


async def test_subscribe_after_the_end_replays_retained_events_and_ends(emu: Emulator) -> None:
    inst = await emu.workflow(Saga, name="saga").create(id="s1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    events = await collect(inst)
    types = [e["type"] for e in events]
    assert types[-1] == "workflow_errored"
    assert types.count("workflow_errored") == 1
    rollback_types = [t for t in types if t.startswith("rollback_")]
    assert rollback_types == [
        "rollback_started",
        "rollback_step_started", "rollback_attempt_started", "rollback_attempt_completed",
        "rollback_step_completed",
        "rollback_step_started", "rollback_attempt_started", "rollback_attempt_completed",
        "rollback_step_completed",
        "rollback_completed",
    ]
    # rollback comes after the failing step, before the instance settles
    assert types.index("step_errored") < types.index("rollback_started")
    assert types.index("rollback_completed") < types.index("workflow_errored")
    # reverse start order, named "<name>-<count>"
    rb_steps = [e["stepName"] for e in events if e["type"] == "rollback_step_started"]
    assert rb_steps == ["charge-1", "reserve-1"]
    attempts = [e for e in events if e["type"] == "rollback_attempt_started"]
    assert all(e["attempt"] == 1 for e in attempts)
    # each event has an id and a timestamp; ids increase
    ids = [e["eventId"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all("timestamp" in e for e in events)
    assert "step_started" in types and "step_completed" in types


async def test_subscribe_follows_live_events_until_completion(emu: Emulator) -> None:
    release = asyncio.Event()

    class Slow(WorkflowEntrypoint):
        async def run(self, event, step):
            async def slow():
                await release.wait()
                return 1

            await step.do("slow", slow)
            await step.sleep("nap", "1 hour")
            return "ok"

    inst = await emu.workflow(Slow, name="slow").create(id="s1")
    seen: list[str] = []

    async def follow() -> None:
        async for ev in inst.subscribe():
            seen.append(ev["type"])

    follower = asyncio.ensure_future(follow())
    await emu.settle()
    assert "attempt_started" in seen
    assert "step_completed" not in seen
    assert not follower.done()
    release.set()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    await asyncio.wait_for(follower, 5)
    assert seen[-1] == "workflow_completed"
    assert seen.index("sleep_started") < seen.index("sleep_completed")
    assert seen.index("step_completed") < seen.index("workflow_completed")


async def test_subscribe_shows_a_failed_rollback(emu: Emulator) -> None:
    def cannot(rb) -> None:
        raise NonRetryableError("refund refused")

    class Bad(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("charge", lambda: 1, rollback=cannot)
            raise RuntimeError("later failure")

    inst = await emu.workflow(Bad, name="bad").create(id="b1")
    status = await inst.wait(timeout=10)
    assert status["rollback"]["outcome"] == "failed"
    events = await collect(inst)
    types = [e["type"] for e in events]
    assert "rollback_attempt_errored" in types
    assert "rollback_step_errored" in types
    assert "rollback_errored" in types
    assert "rollback_completed" not in types
    errored = next(e for e in events if e["type"] == "rollback_step_errored")
    assert errored["stepName"] == "charge-1"
    assert "refund refused" in errored["error"]["message"]
    assert types[-1] == "workflow_errored"


async def test_subscribe_sees_terminate_with_rollback(emu: Emulator) -> None:
    class Waits(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=lambda rb: None)
            await step.wait_for_event("w", "go", timeout="1 day")

    inst = await emu.workflow(Waits, name="waits").create(id="w1")
    await inst.wait(until={"waiting"}, timeout=10)
    follower = asyncio.ensure_future(collect(inst))
    await emu.settle()
    assert not follower.done()
    await inst.terminate(rollback=True)
    await inst.wait(timeout=10)
    events = await asyncio.wait_for(follower, 5)
    types = [e["type"] for e in events]
    assert types[-1] == "workflow_terminated"
    assert "rollback_started" in types and "rollback_completed" in types
    assert types.index("rollback_completed") < types.index("workflow_terminated")
