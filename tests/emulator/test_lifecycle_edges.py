"""Lifecycle edges where Cloudflare's engine decides: a pause during the last step, an instance
that deletes itself, terminate(rollback) during a failure's rollback, siblings after a failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from emulator_support import Gate
from workflows_emulator import Emulator, InstanceNotFoundError
from workflows_saga import RollbackContext, WorkflowEntrypoint


async def test_a_pause_asked_for_during_the_last_step_pauses_after_it(emu: Emulator) -> None:
    gate = Gate()

    class Last(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await step.do("only", lambda: gate("out"))

    inst = await emu.workflow(Last, name="last").create(id="l1")
    await gate.until_entered()
    await inst.pause()
    gate.release.set()
    status = await inst.wait(until={"paused"}, timeout=10)
    assert status["status"] == "paused"  # not complete: the pause was not lost
    await inst.resume()
    status = await inst.wait(timeout=10)
    assert (status["status"], status["output"]) == ("complete", "out")
    assert gate.entries == 1  # the step was not run again


async def test_an_instance_that_deletes_itself_stops_cleanly(emu: Emulator) -> None:
    after: list[str] = []
    wf: Any = None

    class SelfDeleting(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            await step.do("a", lambda: 1)
            await (await wf.get(event["instanceId"])).delete()
            after.append("went on")

    wf = emu.workflow(SelfDeleting, name="self-deleting")
    await wf.create(id="gone")
    await emu.settle()
    assert after == []
    try:
        await wf.get("gone")
        raise AssertionError("the instance should be gone")
    except InstanceNotFoundError:
        pass


async def test_terminate_with_rollback_during_a_failure_s_rollback_ends_errored(
        emu: Emulator) -> None:
    gate = Gate()
    seen: list[tuple[str, str]] = []

    async def slow_undo(rb: RollbackContext[Any]) -> None:
        seen.append((rb.step_name, rb.error.__class__.__name__))
        await gate()

    async def undo(rb: RollbackContext[Any]) -> None:
        seen.append((rb.step_name, rb.error.__class__.__name__))

    def fail() -> None:
        raise ValueError("failed")

    class Saga(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            await step.do("a", lambda: 1, rollback=undo)
            await step.do("b", lambda: 2, rollback=slow_undo)
            await step.do("c", fail, config={"retries": {"limit": 0, "delay": 0}})

    inst = await emu.workflow(Saga, name="saga").create(id="s1")
    await gate.until_entered()
    terminating = asyncio.ensure_future(inst.terminate(rollback=True))
    await emu.settle()
    gate.release.set()
    await asyncio.wait_for(terminating, 10)
    status = await inst.status()
    assert status["status"] == "errored"
    assert status["error"] == {"name": "ValueError", "message": "failed"}
    assert seen == [("b-1", "ValueError"), ("a-1", "ValueError")]
    assert gate.entries == 1  # the in-flight handler was not restarted


async def test_a_sibling_in_flight_runs_on_after_a_failure(emu: Emulator) -> None:
    gate = Gate()
    undone: list[Any] = []

    async def undo(rb: RollbackContext[Any]) -> None:
        undone.append((rb.step_name, rb.output))

    def fail() -> None:
        raise ValueError("boom")

    class Parallel(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            await asyncio.gather(
                step.do("slow", lambda: gate("late"), rollback=undo),
                step.do("fails", fail, config={"retries": {"limit": 0, "delay": 0}}),
            )

    inst = await emu.workflow(Parallel, name="parallel").create(id="p1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert undone == [("slow-1", None)]  # rolled back while still running
    gate.release.set()
    await emu.settle()
    assert gate.finished == 1  # not cancelled: it ran to its end, as on Cloudflare


async def test_a_sibling_that_outlived_its_run_stops_at_restart_and_close(emu: Emulator) -> None:
    attempts: list[int] = []
    second_run: list[bool] = []

    async def keeps_failing(ctx: Any) -> None:
        attempts.append(ctx["attempt"])
        raise KeyError("again")

    def fail() -> None:
        raise ValueError("boom")

    class Parallel(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            if second_run:
                return "second run"
            await asyncio.gather(
                step.do("retrying", keeps_failing,
                        config={"retries": {"limit": 5, "delay": "1 minute"}}),
                step.do("fails", fail, config={"retries": {"limit": 0, "delay": 0}}),
            )

    inst = await emu.workflow(Parallel, name="parallel").create(id="p2")
    assert (await inst.wait(timeout=10))["status"] == "errored"
    assert attempts == [1]  # the sibling is parked on its retry delay
    second_run.append(True)
    await inst.restart()
    assert (await inst.wait(timeout=10))["output"] == "second run"
    await emu.advance("1 hour")  # the old sibling's retries would have fired by now
    assert attempts == [1]
    assert [e["step"] for e in inst.events() if e["step"]] == []  # nothing stale was logged


@pytest.mark.workflows_emulator(max_concurrency=1)
async def test_a_sibling_retrying_after_the_failure_touches_no_status_or_slot(
        emu: Emulator) -> None:
    def fail() -> None:
        raise ValueError("boom")

    async def flaky(ctx: Any) -> None:
        raise KeyError("again")

    class Parallel(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            if event["payload"].get("quick"):
                return "quick"
            await asyncio.gather(
                step.do("retrying", flaky, config={"retries": {"limit": 3, "delay": "1 minute"}}),
                step.do("fails", fail, config={"retries": {"limit": 0, "delay": 0}}),
            )

    wf = emu.workflow(Parallel, name="parallel")
    first = await wf.create(id="first")
    assert (await first.wait(timeout=10))["status"] == "errored"
    await emu.advance("1 hour")  # the sibling retries and fails for good meanwhile
    assert (await first.status())["status"] == "errored"
    assert [r["status"] for r in await wf.list()] == ["errored"]
    second = await wf.create(id="second", params={"quick": True})
    assert (await second.wait(timeout=10))["output"] == "quick"  # the slot was given back


async def test_an_instance_deleted_from_inside_a_step_after_it_suspended_is_gone(
        emu: Emulator) -> None:
    wf: Any = None

    async def deletes_itself(ctx: Any) -> None:
        await asyncio.sleep(0)  # the callback now runs in a task of its own
        await (await wf.get("self")).delete()

    class Deleting(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            await step.do("delete", deletes_itself)

    wf = emu.workflow(Deleting, name="deleting")
    await wf.create(id="self")
    await emu.settle()
    assert await wf.list() == []
    with pytest.raises(InstanceNotFoundError):
        await wf.get("self")
