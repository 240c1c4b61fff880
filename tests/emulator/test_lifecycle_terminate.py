"""Lifecycle: ``terminate()`` and ``terminate(rollback=True)`` (issue 3, reference 3.3-3.6, 4.3, 9)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from emulator_support import Gate
from workflows_emulator import Emulator, InvalidActionError, WorkflowError
from workflows_saga import NonRetryableError, WorkflowEntrypoint


def recorder(log: list[dict[str, Any]], name: str):
    def handler(rb) -> None:
        log.append({
            "name": name,
            "output": rb.output,
            "error_name": getattr(rb.error, "name", type(rb.error).__name__),
            "error": str(rb.error),
            "step_name": rb.step_name,
            "ctx_step": dict(rb.ctx["step"]),
        })
    return handler


def event_names(inst: Any) -> list[str]:
    return [e["event"] for e in inst.events()]


def saga_class(log: list[dict[str, Any]], tail: str, gate: Gate | None = None) -> type:
    """a, b (rollbacks), c (none), then ``tail``: "wait", "sleep" or "gate"."""

    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: "out-a", rollback=recorder(log, "a"))
            await step.do("b", lambda: {"b": 2}, rollback=recorder(log, "b"))
            await step.do("c", lambda: "out-c")
            if tail == "wait":
                await step.wait_for_event("approval", "approved", timeout="7 days")
            elif tail == "sleep":
                await step.sleep("nap", "7 days")
            else:
                assert gate is not None
                await step.do("d", lambda: gate("out-d"), rollback=recorder(log, "d"))
            await step.do("e", lambda: "out-e", rollback=recorder(log, "e"))
            return "finished"

    return Saga


async def test_plain_terminate_runs_no_rollback(emu: Emulator) -> None:
    log: list[dict[str, Any]] = []
    inst = await emu.workflow(saga_class(log, "wait"), name="saga").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.terminate()
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"] is None
    assert log == []
    names = event_names(inst)
    assert "WORKFLOW_TERMINATED" in names
    assert not any(n.startswith("ROLLBACK") for n in names)
    # nothing moves a terminated instance on
    with pytest.raises(WorkflowError):
        await inst.send_event("approved", None)
    await emu.advance("30 days")
    assert (await inst.status())["status"] == "terminated"


@pytest.mark.parametrize("tail", ["wait", "sleep"])
async def test_terminate_with_rollback_from_waiting(tail: str, emu: Emulator) -> None:
    log: list[dict[str, Any]] = []
    inst = await emu.workflow(saga_class(log, tail), name="saga").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    # reverse start order; c has no handler; e never started
    assert [r["name"] for r in log] == ["b", "a"]
    assert log[0]["output"] == {"b": 2}
    assert log[1]["output"] == "out-a"
    assert log[0]["step_name"] == "b-1" and log[0]["ctx_step"] == {"name": "b", "count": 1}
    for r in log:
        assert r["error_name"] == "Error"  # as a Python handler sees it on workerd
        assert "Instance terminated" in r["error"]
    names = event_names(inst)
    assert names.index("ROLLBACK_START") < names.index("ROLLBACK_COMPLETE")
    assert names.index("ROLLBACK_COMPLETE") < names.index("WORKFLOW_TERMINATED")
    assert names[-1] == "WORKFLOW_TERMINATED"
    start = next(e for e in inst.events() if e["event"] == "ROLLBACK_START")
    assert start["data"]["totalSteps"] == 2
    # later time does not revive it
    await emu.advance("30 days")
    assert (await inst.status())["status"] == "terminated"
    assert len(log) == 2


async def test_terminate_with_rollback_from_paused(emu: Emulator) -> None:
    log: list[dict[str, Any]] = []
    inst = await emu.workflow(saga_class(log, "sleep"), name="saga").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.pause()
    assert (await inst.status())["status"] == "paused"
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert [r["name"] for r in log] == ["b", "a"]


async def test_terminate_with_rollback_while_a_step_is_in_flight(emu: Emulator) -> None:
    log: list[dict[str, Any]] = []
    gate = Gate()
    inst = await emu.workflow(saga_class(log, "gate", gate), name="saga").create(id="t1")
    await gate.until_entered()
    assert (await inst.status())["status"] == "running"
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    # d was in flight: eligible, first (started last), with output None
    assert [r["name"] for r in log] == ["d", "b", "a"]
    assert log[0]["output"] is None
    assert log[0]["error_name"] == "Error"  # as on workerd
    # the in-flight callback was stopped, and is not resumed later
    gate.release.set()
    await emu.advance("1 hour")
    assert gate.finished == 0
    assert gate.entries == 1
    assert (await inst.status())["status"] == "terminated"
    assert "e" not in [r["name"] for r in log]


async def test_terminate_with_rollback_orders_parallel_steps_by_start(emu: Emulator) -> None:
    log: list[dict[str, Any]] = []
    first, second = Gate(), Gate()

    class Parallel(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("setup", lambda: "s", rollback=recorder(log, "setup"))
            await asyncio.gather(
                step.do("p1", lambda: first("one"), rollback=recorder(log, "p1")),
                step.do("p2", lambda: second("two"), rollback=recorder(log, "p2")),
            )

    inst = await emu.workflow(Parallel, name="parallel").create(id="p")
    await first.until_entered()
    await second.until_entered()
    # p2 finishes first; p1 is still in flight at terminate
    second.release.set()
    await emu.settle()
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert [r["name"] for r in log] == ["p2", "p1", "setup"]
    assert log[0]["output"] == "two"
    assert log[1]["output"] is None


async def test_terminate_with_rollback_failure_halts_the_chain(emu: Emulator) -> None:
    calls: list[str] = []

    def boom(rb) -> None:
        calls.append("b")
        raise NonRetryableError("cannot undo b")

    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=lambda rb: calls.append("a"))
            await step.do("b", lambda: 2, rollback=boom)
            await step.do("c", lambda: 3, rollback=lambda rb: calls.append("c"))
            await step.sleep("nap", "1 day")

    inst = await emu.workflow(Saga, name="saga").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"]["outcome"] == "failed"
    assert "cannot undo b" in status["rollback"]["error"]["message"]
    assert calls == ["c", "b"]
    names = event_names(inst)
    assert "ROLLBACK_FAILED" in names
    assert "ROLLBACK_COMPLETE" not in names
    failed = next(e for e in inst.events() if e["event"] == "ROLLBACK_FAILED")
    assert failed["data"] == {"totalSteps": 3, "completedSteps": 1}


async def test_terminate_with_rollback_and_no_handlers_has_no_rollback_outcome(emu: Emulator) -> None:
    class Plain(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1)
            await step.sleep("nap", "1 day")

    inst = await emu.workflow(Plain, name="plain").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"] is None


async def test_terminate_with_rollback_uses_rollback_config_retries(emu: Emulator) -> None:
    attempts: list[int] = []

    def flaky(rb) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise RuntimeError("try again")

    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=flaky, rollback_config={
                "retries": {"limit": 2, "delay": "1 minute", "backoff": "constant"}})
            await step.sleep("nap", "1 day")

    inst = await emu.workflow(Saga, name="saga").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert attempts == [1, 2, 3]
    names = event_names(inst)
    assert names.count("ROLLBACK_ATTEMPT_FAILURE") == 2
    assert names.count("ROLLBACK_ATTEMPT_SUCCESS") == 1


@pytest.mark.parametrize("kind", ["complete", "errored", "terminated"])
async def test_terminate_of_a_finished_instance_is_an_error(kind: str, emu: Emulator) -> None:
    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            if event["payload"]["kind"] == "errored":
                raise RuntimeError("boom")
            if event["payload"]["kind"] == "terminated":
                await step.sleep("nap", "1 day")
            return 1

    inst = await emu.workflow(Quick, name="quick").create(id="q", params={"kind": kind})
    if kind == "terminated":
        await inst.wait(until={"waiting"}, timeout=10)
        await inst.terminate()
    status = await inst.wait(timeout=10)
    assert status["status"] == kind
    for rollback in (False, True):
        with pytest.raises(InvalidActionError, match="cannot_terminate"):
            await inst.terminate(rollback=rollback)
    assert (await inst.status()) == status


@pytest.mark.workflows_emulator(max_concurrency=1)
async def test_terminate_of_a_queued_instance(emu: Emulator) -> None:
    gate = Gate()
    ran: list[str] = []

    class Blocker(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("block", lambda: gate(1))

    class Other(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("work", lambda: ran.append("work") or 1)

    first = await emu.workflow(Blocker, name="blocker").create(id="b1")
    await gate.until_entered()
    second = await emu.workflow(Other, name="other").create(id="o1")
    await emu.settle()
    assert (await second.status())["status"] == "queued"
    await second.terminate()
    assert (await second.status())["status"] == "terminated"
    gate.release.set()
    assert (await first.wait(timeout=10))["status"] == "complete"
    await emu.advance("1 minute")
    assert ran == []
    assert (await second.status())["status"] == "terminated"


async def test_terminate_with_rollback_includes_a_failed_step_whose_error_was_caught(emu: Emulator) -> None:
    log: list[dict[str, Any]] = []

    def declined() -> None:
        raise NonRetryableError("declined")

    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: "out-a", rollback=recorder(log, "a"))
            try:
                await step.do("b", declined, rollback=recorder(log, "b"))
            except NonRetryableError:
                pass
            await step.sleep("nap", "1 day")

    inst = await emu.workflow(Saga, name="saga").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    assert log == []  # a caught error never rolls back by itself
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert [(r["name"], r["output"]) for r in log] == [("b", None), ("a", "out-a")]


async def test_terminate_with_rollback_while_waiting_for_pause(emu: Emulator) -> None:
    log: list[dict[str, Any]] = []
    gate = Gate()
    inst = await emu.workflow(saga_class(log, "gate", gate), name="saga").create(id="t1")
    await gate.until_entered()
    await inst.pause()
    assert (await inst.status())["status"] == "waitingForPause"
    await inst.terminate(rollback=True)
    status = await inst.wait(timeout=10)
    assert status["status"] == "terminated"
    assert [(r["name"], r["output"]) for r in log] == [
        ("d", None), ("b", {"b": 2}), ("a", "out-a")]
    gate.release.set()
    await emu.advance("1 hour")
    assert (await inst.status())["status"] == "terminated"
    assert gate.finished == 0


@pytest.mark.workflows_emulator(max_concurrency=1)
async def test_terminate_with_rollback_of_a_queued_instance_that_never_started(emu: Emulator) -> None:
    gate = Gate()
    log: list[dict[str, Any]] = []

    class Blocker(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("block", lambda: gate(1))

    first = await emu.workflow(Blocker, name="blocker").create(id="b1")
    await gate.until_entered()
    second = await emu.workflow(saga_class(log, "wait"), name="saga").create(id="s1")
    await emu.settle()
    assert (await second.status())["status"] == "queued"
    await second.terminate(rollback=True)
    gate.release.set()
    await first.wait(timeout=10)
    status = await second.wait(timeout=10)
    assert status["status"] == "terminated"
    assert status["rollback"] is None
    assert log == []


async def test_status_stays_running_while_terminate_rollback_runs(emu: Emulator) -> None:
    hold = Gate()
    calls: list[str] = []

    async def slow_undo(rb) -> None:
        calls.append("a")
        await hold(None)

    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=slow_undo)
            await step.sleep("nap", "1 day")

    inst = await emu.workflow(Saga, name="saga").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    # terminate(rollback=True) returns once the handlers are done, as on Cloudflare
    terminating = asyncio.ensure_future(inst.terminate(rollback=True))
    await hold.until_entered()
    status = await inst.status()
    assert status["status"] == "running"
    assert status["rollback"] is None
    assert not terminating.done()
    hold.release.set()
    await terminating
    status = await inst.status()
    assert status["status"] == "terminated"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert calls == ["a"]
