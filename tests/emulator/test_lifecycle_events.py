"""Lifecycle: ``step.wait_for_event`` and ``instance.send_event`` (issue 3, reference 2.5, 4.3)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from emulator_support import first_ts
from workflows_emulator import Emulator, WorkflowError, WorkflowTimeoutError
from workflows_saga import WorkflowEntrypoint

HOUR = 3_600_000
DAY = 24 * HOUR


async def test_event_sent_while_waiting_is_returned_with_payload_timestamp_and_type(emu: Emulator) -> None:
    got: list[dict[str, Any]] = []

    class Approval(WorkflowEntrypoint):
        async def run(self, event, step):
            ev = await step.wait_for_event("approval", "approved", timeout="1 hour")
            got.append(ev)
            return ev["payload"]

    inst = await emu.workflow(Approval, name="approval").create(id="a1")
    status = await inst.wait(until={"waiting"}, timeout=10)
    assert status["status"] == "waiting"
    await emu.advance("10 minutes")
    sent_at = emu.clock.now_ms()
    await inst.send_event("approved", {"by": "alice", "n": 1})
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert status["output"] == {"by": "alice", "n": 1}
    assert len(got) == 1
    ev = got[0]
    assert set(ev) == {"payload", "timestamp", "type"}
    assert ev["type"] == "approved"
    assert ev["payload"] == {"by": "alice", "n": 1}
    assert isinstance(ev["timestamp"], datetime)
    assert ev["timestamp"].timestamp() * 1000 == pytest.approx(sent_at, abs=1)


async def test_events_sent_before_the_wait_are_buffered_fifo_per_type(emu: Emulator) -> None:

    class Collector(WorkflowEntrypoint):
        async def run(self, event, step):
            # A sleep first, so that every event below is sent before any wait.
            await step.sleep("first", "1 hour")
            out = []
            for name, kind in [("w1", "x"), ("w2", "y"), ("w3", "x"), ("w4", "x")]:
                ev = await step.wait_for_event(name, kind, timeout="1 hour")
                out.append([ev["type"], ev["payload"]])
            return out

    inst = await emu.workflow(Collector, name="collector").create(id="c1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.send_event("x", "x-first")
    await inst.send_event("y", "y-first")
    await inst.send_event("x", "x-second")
    await inst.send_event("y", "y-second")
    await inst.send_event("x", "x-third")
    assert (await inst.status())["status"] == "waiting"
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"] == [
        ["x", "x-first"], ["y", "y-first"], ["x", "x-second"], ["x", "x-third"],
    ]


async def test_buffered_event_keeps_its_send_timestamp(emu: Emulator) -> None:
    got: list[datetime] = []

    class Late(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("first", "2 hours")
            ev = await step.wait_for_event("go", "go", timeout="1 hour")
            got.append(ev["timestamp"])

    inst = await emu.workflow(Late, name="late").create(id="l1")
    await inst.wait(until={"waiting"}, timeout=10)
    sent_at = emu.clock.now_ms()
    await inst.send_event("go", None)
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert got[0].timestamp() * 1000 == pytest.approx(sent_at, abs=1)


async def test_uncaught_wait_timeout_fails_the_instance_and_rolls_back(emu: Emulator) -> None:
    undone: list[Any] = []

    class Expiring(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("hold", lambda: {"hold": 7}, rollback=lambda rb: undone.append(
                [rb.output, type(rb.error).__name__, str(rb.error)]))
            await step.wait_for_event("approval", "approved", timeout="2 hours")
            return "approved"

    inst = await emu.workflow(Expiring, name="expiring").create(id="e1")
    t0 = time.perf_counter()
    status = await inst.wait(timeout=10)
    assert time.perf_counter() - t0 < 1.0
    assert status["status"] == "errored"
    assert status["error"]["name"] == "WorkflowTimeoutError"
    assert "7200000ms" in status["error"]["message"]
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert len(undone) == 1
    assert undone[0][0] == {"hold": 7}
    assert "timed out" in undone[0][2]
    assert first_ts(inst, "WAIT_TIMEOUT") - first_ts(inst, "WAIT_START") == 2 * HOUR


async def test_default_wait_timeout_is_24_hours(emu: Emulator) -> None:
    class Default(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.wait_for_event("approval", "approved")

    inst = await emu.workflow(Default, name="default").create(id="d1")
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("23 hours")
    assert (await inst.status())["status"] == "waiting"
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert status["error"]["message"] == "Execution timed out after 86400000ms"
    assert first_ts(inst, "WAIT_TIMEOUT") - first_ts(inst, "WAIT_START") == 24 * HOUR


async def test_caught_wait_timeout_does_not_roll_back_and_the_workflow_continues(emu: Emulator) -> None:
    undone: list[Any] = []

    class Patient(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("hold", lambda: 1, rollback=lambda rb: undone.append(1))
            try:
                await step.wait_for_event("approval", "approved", timeout="1 hour")
            except WorkflowTimeoutError as exc:
                return f"gave up: {exc}"
            return "approved"

    inst = await emu.workflow(Patient, name="patient").create(id="p1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert status["output"] == "gave up: Execution timed out after 3600000ms"
    assert status["rollback"] is None
    assert undone == []


async def test_caught_wait_timeout_is_the_same_error_when_run_is_replayed(emu: Emulator) -> None:
    """Replay re-raises the persisted timeout: the same `except` clause must catch it again."""

    class Patient(WorkflowEntrypoint):
        async def run(self, event, step):
            try:
                await step.wait_for_event("approval", "approved", timeout="1 hour")
                outcome = "approved"
            except WorkflowTimeoutError:
                outcome = "timed out"
            await step.sleep("cool-down", "1 hour")  # pause + resume here replays run()
            return outcome

    inst = await emu.workflow(Patient, name="patient").create(id="p1")
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("1 hour")  # the wait times out; the instance now sleeps
    assert (await inst.status())["status"] == "waiting"
    await inst.pause()
    await inst.resume()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"] == "timed out"


async def test_event_of_another_type_does_not_satisfy_the_wait(emu: Emulator) -> None:
    class Picky(WorkflowEntrypoint):
        async def run(self, event, step):
            ev = await step.wait_for_event("approval", "approved", timeout="1 hour")
            return ev["payload"]

    inst = await emu.workflow(Picky, name="picky").create(id="p1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.send_event("rejected", "no")
    await emu.advance("1 minute")
    assert (await inst.status())["status"] == "waiting"
    await inst.send_event("approved", "yes")
    status = await inst.wait(timeout=10)
    assert status["output"] == "yes"


@pytest.mark.parametrize("bad", ["a.b", "-leading-dash", "x" * 101, "has space", ""])
async def test_send_event_rejects_invalid_types(bad: str, emu: Emulator) -> None:
    class Waits(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.wait_for_event("w", "ok", timeout="1 hour")

    inst = await emu.workflow(Waits, name="waits").create(id="w1")
    await inst.wait(until={"waiting"}, timeout=10)
    with pytest.raises(WorkflowError):
        await inst.send_event(bad, {"p": 1})
    # nothing was buffered: a valid event is still the first one delivered
    await inst.send_event("ok", "valid")
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"


async def test_send_event_accepts_100_character_type(emu: Emulator) -> None:
    kind = "t" * 100

    class Waits(WorkflowEntrypoint):
        async def run(self, event, step):
            return (await step.wait_for_event("w", kind, timeout="1 hour"))["type"]

    inst = await emu.workflow(Waits, name="waits").create(id="w1")
    await inst.send_event(kind, 1)
    status = await inst.wait(timeout=10)
    assert status["output"] == kind


async def test_wait_for_event_with_a_dotted_type_fails_with_invalid_event_type(emu: Emulator) -> None:
    class Dotted(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.wait_for_event("w", "order.paid", timeout="1 hour")

    inst = await emu.workflow(Dotted, name="dotted").create(id="d1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert "invalid_event_type" in status["error"]["message"]


@pytest.mark.parametrize(("timeout", "ms"), [("500 milliseconds", 500), ("366 days", 366 * DAY)])
async def test_wait_timeouts_are_not_bounded_as_in_cloudflare_s_engine(
        timeout: str, ms: int, emu: Emulator) -> None:
    class Short(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.wait_for_event("w", "ok", timeout=timeout)

    inst = await emu.workflow(Short, name="short").create(id="b1")
    start = emu.clock.now_ms()
    status = await inst.wait(timeout=10)
    assert status["error"] == {"name": "WorkflowTimeoutError",
                               "message": f"Execution timed out after {ms}ms"}
    assert first_ts(inst, "WAIT_TIMEOUT") - start == ms


@pytest.mark.parametrize("timeout", [0, None, ""])
async def test_no_wait_timeout_means_24_hours(timeout: object, emu: Emulator) -> None:
    class Default(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.wait_for_event("w", "ok", timeout=timeout)

    inst = await emu.workflow(Default, name="default").create(id="d1")
    start = emu.clock.now_ms()
    status = await inst.wait(timeout=10)
    assert status["error"]["message"] == f"Execution timed out after {24 * 3600 * 1000}ms"
    assert first_ts(inst, "WAIT_TIMEOUT") - start == 24 * 3600 * 1000


async def test_send_event_to_finished_instances_is_an_error(emu: Emulator) -> None:
    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            if event["payload"].get("fail"):
                raise RuntimeError("boom")
            return 1

    wf = emu.workflow(Quick, name="quick")
    ok = await wf.create(id="ok", params={})
    bad = await wf.create(id="bad", params={"fail": True})
    assert (await ok.wait(timeout=10))["status"] == "complete"
    assert (await bad.wait(timeout=10))["status"] == "errored"
    with pytest.raises(WorkflowError):
        await ok.send_event("x", 1)
    with pytest.raises(WorkflowError):
        await bad.send_event("x", 1)


async def test_wait_for_event_result_is_cached_on_replay(emu: Emulator) -> None:
    """After a replay (pause/resume), the wait returns the event it got, without a new one."""
    seen: list[Any] = []

    class TwoPhase(WorkflowEntrypoint):
        async def run(self, event, step):
            ev = await step.wait_for_event("first", "go", timeout="1 hour")
            seen.append(ev["payload"])
            await step.sleep("nap", "1 hour")
            return ev["payload"]

    inst = await emu.workflow(TwoPhase, name="two-phase").create(id="t1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.send_event("go", "payload-1")
    await emu.advance("1 minute")
    assert seen == ["payload-1"]
    await inst.pause()
    await inst.resume()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert status["output"] == "payload-1"
    assert seen == ["payload-1", "payload-1"]


async def test_waits_have_their_own_name_counter(emu: Emulator) -> None:
    class Shared(WorkflowEntrypoint):
        async def run(self, event, step):
            a = await step.do("x", lambda ctx: ctx["step"]["count"])
            e1 = await step.wait_for_event("x", "go", timeout="1 hour")
            b = await step.do("x", lambda ctx: ctx["step"]["count"])
            e2 = await step.wait_for_event("x", "go", timeout="1 hour")
            return [a, b, e1["payload"], e2["payload"]]

    inst = await emu.workflow(Shared, name="shared").create(id="s1")
    await inst.send_event("go", 1)
    await inst.send_event("go", 2)
    status = await inst.wait(timeout=10)
    assert status["output"] == [1, 2, 1, 2]
    waits = [e["step"] for e in inst.events() if e["event"] == "WAIT_START"]
    assert waits == ["x-1", "x-2"]


async def test_event_sent_while_paused_is_delivered_after_resume(emu: Emulator) -> None:
    class Waits(WorkflowEntrypoint):
        async def run(self, event, step):
            return (await step.wait_for_event("w", "go", timeout="1 hour"))["payload"]

    inst = await emu.workflow(Waits, name="waits").create(id="w1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.pause()
    await inst.send_event("go", "while-paused")
    await emu.advance("1 minute")
    assert (await inst.status())["status"] == "paused"
    await inst.resume()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert status["output"] == "while-paused"
