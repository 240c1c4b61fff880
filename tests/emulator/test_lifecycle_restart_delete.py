"""Lifecycle: ``restart()``, ``restart(from_step=...)`` and ``delete()`` (issue 3, reference 4.3)."""

from __future__ import annotations

import pytest

from emulator_support import Gate
from workflows_emulator import Emulator, InstanceNotFoundError, InvalidActionError
from workflows_saga import WorkflowEntrypoint


def three_steps(ran: list[str]) -> type:
    class Three(WorkflowEntrypoint):
        async def run(self, event, step):
            a = await step.do("a", lambda: ran.append("a") or len(ran))
            b = await step.do("b", lambda: ran.append("b") or len(ran))
            c = await step.do("c", lambda: ran.append("c") or len(ran))
            return [a, b, c]

    return Three


async def test_restart_wipes_history_and_runs_everything_again(emu: Emulator) -> None:
    ran: list[str] = []
    inst = await emu.workflow(three_steps(ran), name="three").create(id="r1")
    assert (await inst.wait(timeout=10))["output"] == [1, 2, 3]
    await inst.restart()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert ran == ["a", "b", "c", "a", "b", "c"]
    assert status["output"] == [4, 5, 6]
    # history was wiped: each step started once in the log
    starts = [e["step"] for e in inst.events() if e["event"] == "STEP_START"]
    assert starts == ["a-1", "b-1", "c-1"]


async def test_restart_from_step_reuses_results_before_it(emu: Emulator) -> None:
    ran: list[str] = []
    inst = await emu.workflow(three_steps(ran), name="three").create(id="r1")
    assert (await inst.wait(timeout=10))["output"] == [1, 2, 3]
    await inst.restart(from_step="b")
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert ran == ["a", "b", "c", "b", "c"]
    assert status["output"] == [1, 4, 5]


async def test_restart_from_step_with_count_and_type(emu: Emulator) -> None:
    ran: list[str] = []

    class Loop(WorkflowEntrypoint):
        async def run(self, event, step):
            out = []
            for i in range(3):
                out.append(await step.do("x", lambda i=i: ran.append(f"x{i}") or i))
                await step.sleep("x", "1 hour")
            return out

    inst = await emu.workflow(Loop, name="loop").create(id="l1")
    assert (await inst.wait(timeout=10))["output"] == [0, 1, 2]
    await inst.restart(from_step={"name": "x", "count": 2, "type": "sleep"})
    assert (await inst.wait(timeout=10))["status"] == "complete"
    # the sleep x-2 comes after do x-2: do x-1 and x-2 are reused, x-3 re-runs
    assert ran == ["x0", "x1", "x2", "x2"]

    ran.clear()
    await inst.restart(from_step={"name": "x", "count": 2})
    assert (await inst.wait(timeout=10))["status"] == "complete"
    assert ran == ["x1", "x2"]


async def test_restart_from_unknown_step_is_an_error_and_changes_nothing(emu: Emulator) -> None:
    ran: list[str] = []
    inst = await emu.workflow(three_steps(ran), name="three").create(id="r1")
    status = await inst.wait(timeout=10)
    with pytest.raises(InvalidActionError, match='Step "nope" not found in execution history'):
        await inst.restart(from_step="nope")
    assert (await inst.status()) == status
    assert ran == ["a", "b", "c"]


async def test_restart_of_an_errored_instance_clears_error_and_rollback(emu: Emulator) -> None:
    undone: list[str] = []

    class FailsOnce(WorkflowEntrypoint):
        runs = 0

        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=lambda rb: undone.append("a"))

            def maybe_fail():
                FailsOnce.runs += 1
                if FailsOnce.runs == 1:
                    raise ValueError("first time fails")
                return 2

            return await step.do("b", maybe_fail, config={"retries": {"limit": 0, "delay": 0}})

    inst = await emu.workflow(FailsOnce, name="fails-once").create(id="f1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert undone == ["a"]
    await inst.restart()
    status = await inst.wait(timeout=10)
    assert status == {"status": "complete", "error": None, "output": 2, "rollback": None}
    assert undone == ["a"]


async def test_restart_while_a_step_runs_cancels_it_and_starts_over(emu: Emulator) -> None:
    gate = Gate()
    attempts: list[int] = []

    class Slow(WorkflowEntrypoint):
        async def run(self, event, step):
            async def slow(ctx):
                attempts.append(ctx["attempt"])
                if len(attempts) == 1:
                    await gate(None)
                return "fast"

            return await step.do("slow", slow)

    inst = await emu.workflow(Slow, name="slow").create(id="s1")
    await gate.until_entered()
    await inst.restart()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert status["output"] == "fast"
    assert attempts == [1, 1]  # a fresh first attempt, not a retry
    gate.release.set()
    await emu.settle()
    assert gate.finished == 0


async def test_restart_of_a_terminated_instance_runs_again(emu: Emulator) -> None:
    ran: list[str] = []

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: ran.append("a") or 1)
            await step.sleep("nap", "1 hour")
            return "ok"

    inst = await emu.workflow(Napper, name="napper").create(id="n1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.terminate()
    assert (await inst.status())["status"] == "terminated"
    await inst.restart()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert ran == ["a", "a"]


async def test_delete_stops_the_instance_without_rollback_and_forgets_it(emu: Emulator) -> None:
    undone: list[str] = []
    ran: list[str] = []

    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=lambda rb: undone.append("a"))
            await step.sleep("nap", "1 hour")
            await step.do("b", lambda: ran.append("b") or 2)

    wf = emu.workflow(Saga, name="saga")
    inst = await wf.create(id="d1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.delete()
    with pytest.raises(InstanceNotFoundError):
        await wf.get("d1")
    with pytest.raises(InstanceNotFoundError):
        await inst.status()
    assert [i["id"] for i in await wf.list()] == []
    await emu.advance("2 hours")
    assert undone == []
    assert ran == []
    # the id is free again
    again = await wf.create(id="d1")
    await again.wait(until={"waiting"}, timeout=10)
    status = await again.wait(timeout=10)
    assert status["status"] == "complete"
    assert ran == ["b"]


async def test_delete_while_a_step_runs_cancels_it(emu: Emulator) -> None:
    gate = Gate()

    class Slow(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("slow", lambda: gate(1), rollback=lambda rb: None)

    wf = emu.workflow(Slow, name="slow")
    inst = await wf.create(id="s1")
    await gate.until_entered()
    await inst.delete()
    gate.release.set()
    await emu.settle()
    assert gate.finished == 0
    with pytest.raises(InstanceNotFoundError):
        await wf.get("s1")


async def test_delete_twice_is_not_found(emu: Emulator) -> None:
    ran: list[str] = []
    wf = emu.workflow(three_steps(ran), name="three")
    inst = await wf.create(id="d1")
    await inst.wait(timeout=10)
    await inst.delete()
    with pytest.raises(InstanceNotFoundError):
        await inst.delete()
    with pytest.raises(InstanceNotFoundError):
        await inst.restart()
    with pytest.raises(InstanceNotFoundError):
        await inst.terminate()


async def test_restart_after_a_rolled_back_failure_rolls_back_again_with_full_events(emu: Emulator) -> None:
    undone: list[str] = []

    class AlwaysFails(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=lambda rb: undone.append("a"))
            await step.do("b", lambda: 2, rollback=lambda rb: undone.append("b"))
            raise RuntimeError("always")

    inst = await emu.workflow(AlwaysFails, name="always").create(id="f1")
    status = await inst.wait(timeout=10)
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert undone == ["b", "a"]

    await inst.restart()
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert undone == ["b", "a", "b", "a"]
    names = [e["event"] for e in inst.events()]
    # the restarted run's history is complete: it has its own ROLLBACK_START
    assert names.count("ROLLBACK_START") == 1
    assert names.index("ROLLBACK_START") < names.index("ROLLBACK_COMPLETE")
    types = [e["type"] async for e in inst.subscribe()]
    assert "rollback_started" in types

    # from a step: the earlier cached step is rolled back too, and the phase is logged
    await inst.restart(from_step="b")
    status = await inst.wait(timeout=10)
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert undone == ["b", "a", "b", "a", "b", "a"]
    events = inst.events()
    last_restart = max(i for i, e in enumerate(events) if e["event"] == "WORKFLOW_RESTARTED")
    starts = [e for e in events[last_restart:] if e["event"] == "ROLLBACK_START"]
    assert len(starts) == 1
    assert starts[0]["data"]["totalSteps"] == 2


async def test_a_full_restart_logs_a_new_run_as_cloudflare_s_engine_does(emu: Emulator) -> None:
    class Fails(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=lambda rb: None)
            raise ValueError("no")

    inst = await emu.workflow(Fails, name="fails").create(id="r1")
    await inst.wait(timeout=10)
    await inst.restart()
    assert (await inst.status())["status"] == "running"
    assert [e["event"] for e in inst.events()] == ["WORKFLOW_QUEUED", "WORKFLOW_START"]
    await inst.wait(timeout=10)
    names = [e["event"] for e in inst.events()]
    assert names[:3] == ["WORKFLOW_QUEUED", "WORKFLOW_START", "STEP_START"]
    assert names.count("WORKFLOW_FAILURE") == 1 and names.count("ROLLBACK_START") == 1

    await inst.restart(from_step="a")
    names = [e["event"] for e in inst.events()]
    assert names == ["WORKFLOW_QUEUED", "WORKFLOW_START", "WORKFLOW_RESTARTED"]
