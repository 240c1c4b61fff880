"""Lifecycle: ``pause()`` and ``resume()`` (issue 3, reference 4.3, 9)."""

from __future__ import annotations

import pytest

from emulator_support import Gate, first_ts, labels
from workflows_emulator import Emulator, EmulatorError, InvalidActionError, WorkflowError
from workflows_saga import WorkflowEntrypoint

HOUR = 3_600_000
MINUTE = 60_000


async def test_pause_while_a_step_runs_is_waiting_for_pause_then_paused(emu: Emulator) -> None:
    gate = Gate()
    ran: list[str] = []

    class Slow(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("slow", lambda: gate("slow-out"))
            await step.do("next", lambda: ran.append("next") or 2)
            return "done"

    inst = await emu.workflow(Slow, name="slow").create(id="s1")
    await gate.until_entered()
    await inst.pause()
    assert (await inst.status())["status"] == "waitingForPause"
    gate.release.set()
    status = await inst.wait(until={"paused"}, timeout=10)
    assert status["status"] == "paused"
    # the running step finished and was recorded; the next one did not start
    assert ("STEP_SUCCESS", "slow-1") in labels(inst, "STEP_SUCCESS")
    assert ran == []
    await emu.advance("1 day")
    assert (await inst.status())["status"] == "paused"
    assert ran == []

    await inst.resume()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert ran == ["next"]
    assert gate.entries == 1  # the completed step never re-ran


async def test_pause_of_a_sleeping_instance_is_immediate_and_keeps_remaining_time(emu: Emulator) -> None:
    ran: list[str] = []

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "10 hours")
            ran.append("woke")
            await step.do("after", lambda: ran.append("after") or 1)

    inst = await emu.workflow(Napper, name="napper").create(id="n1")
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("4 hours")
    await inst.pause()
    assert (await inst.status())["status"] == "paused"
    # the sleep's deadline passes while paused: nothing happens
    await emu.advance("100 hours")
    assert (await inst.status())["status"] == "paused"
    assert "after" not in ran

    await inst.resume()
    resumed_at = emu.clock.now_ms()
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("5 hours")
    assert (await inst.status())["status"] == "waiting"
    assert "after" not in ran
    await emu.advance("1 hour")
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert ran.count("after") == 1
    assert first_ts(inst, "SLEEP_COMPLETE", "nap-1") == pytest.approx(resumed_at + 6 * HOUR)


async def test_pause_keeps_remaining_time_of_an_event_wait_timeout(emu: Emulator) -> None:
    class Waiter(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.wait_for_event("approval", "ok", timeout="2 hours")

    inst = await emu.workflow(Waiter, name="waiter").create(id="w1")
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("30 minutes")
    await inst.pause()
    await emu.advance("10 hours")
    assert (await inst.status())["status"] == "paused"
    await inst.resume()
    resumed_at = emu.clock.now_ms()
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("89 minutes")
    assert (await inst.status())["status"] == "waiting"
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert status["error"]["name"] == "WorkflowTimeoutError"
    assert first_ts(inst, "WAIT_TIMEOUT") == pytest.approx(resumed_at + 90 * MINUTE)


async def test_pause_keeps_remaining_time_of_a_retry_delay(emu: Emulator) -> None:
    attempts: list[float] = []


    class Flaky(WorkflowEntrypoint):
        async def run(self, event, step):
            def flaky(ctx):
                attempts.append(emu.clock.now_ms())
                if ctx["attempt"] == 1:
                    raise RuntimeError("transient")
                return "ok"

            return await step.do("flaky", flaky, config={
                "retries": {"limit": 1, "delay": "1 hour", "backoff": "constant"}})

    inst = await emu.workflow(Flaky, name="flaky").create(id="f1")
    await inst.wait(until={"waiting"}, timeout=10)
    assert len(attempts) == 1
    await emu.advance("20 minutes")
    await inst.pause()
    await emu.advance("3 hours")
    assert len(attempts) == 1
    await inst.resume()
    resumed_at = emu.clock.now_ms()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert len(attempts) == 2
    assert attempts[1] == pytest.approx(resumed_at + 40 * MINUTE)


async def test_waiting_on_a_paused_instance_raises_instead_of_hanging(emu: Emulator) -> None:
    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "1 hour")

    inst = await emu.workflow(Napper, name="napper").create(id="n1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.pause()
    with pytest.raises(EmulatorError, match="paused"):
        await inst.wait(timeout=5)


async def test_resume_cancels_a_pending_pause(emu: Emulator) -> None:
    gate = Gate()

    class Slow(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("slow", lambda: gate(1))
            return await step.do("next", lambda: 2)

    inst = await emu.workflow(Slow, name="slow").create(id="s1")
    await gate.until_entered()
    await inst.pause()
    assert (await inst.status())["status"] == "waitingForPause"
    await inst.resume()
    assert (await inst.status())["status"] == "running"
    gate.release.set()
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert status["output"] == 2


async def test_pause_and_resume_events_are_logged(emu: Emulator) -> None:
    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "1 hour")

    inst = await emu.workflow(Napper, name="napper").create(id="n1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.pause()
    await inst.resume()
    await inst.wait(timeout=10)
    names = [e["event"] for e in inst.events()]
    assert names.index("WORKFLOW_PAUSED") < names.index("WORKFLOW_RESUMED")
    assert names[-1] == "WORKFLOW_SUCCESS"


async def test_invalid_pause_and_resume_give_errors(emu: Emulator) -> None:
    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "1 hour")
            return "ok"

    wf = emu.workflow(Napper, name="napper")
    inst = await wf.create(id="n1")
    await inst.wait(until={"waiting"}, timeout=10)
    with pytest.raises(InvalidActionError):
        await inst.resume()  # not paused
    await inst.pause()
    await inst.pause()  # already paused: no effect, as on Cloudflare (nothing is lost)
    assert (await inst.status())["status"] == "paused"
    await inst.resume()
    assert (await inst.wait(timeout=10))["status"] == "complete"
    with pytest.raises(InvalidActionError):
        await inst.pause()
    with pytest.raises(InvalidActionError):
        await inst.resume()
    assert (await inst.status())["status"] == "complete"


async def test_terminated_instance_cannot_be_resumed(emu: Emulator) -> None:
    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "1 hour")

    inst = await emu.workflow(Napper, name="napper").create(id="n1")
    await inst.wait(until={"waiting"}, timeout=10)
    await inst.pause()
    await inst.terminate()
    with pytest.raises(WorkflowError):
        await inst.resume()
    assert (await inst.status())["status"] == "terminated"


@pytest.mark.workflows_emulator(max_concurrency=1)
async def test_pause_of_a_queued_instance_keeps_it_from_starting(emu: Emulator) -> None:
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
    await second.pause()
    assert (await second.status())["status"] == "paused"
    gate.release.set()
    assert (await first.wait(timeout=10))["status"] == "complete"
    await emu.advance("1 minute")
    assert (await second.status())["status"] == "paused"
    assert ran == []
    await second.resume()
    assert (await second.wait(timeout=10))["status"] == "complete"
    assert ran == ["work"]


@pytest.mark.workflows_emulator(max_concurrency=1)
async def test_resume_when_the_concurrency_limit_is_reached_queues_the_instance(emu: Emulator) -> None:
    gate = Gate()
    ran: list[str] = []

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "1 hour")
            await step.do("after", lambda: ran.append("napper") or 1)

    class Blocker(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("block", lambda: gate(1), config={"timeout": "1 day"})

    napper = await emu.workflow(Napper, name="napper").create(id="n1")
    await napper.wait(until={"waiting"}, timeout=10)
    await napper.pause()
    blocker = await emu.workflow(Blocker, name="blocker").create(id="b1")
    await gate.until_entered()
    await napper.resume()
    await emu.settle()
    assert (await napper.status())["status"] == "queued"
    gate.release.set()
    assert (await blocker.wait(timeout=10))["status"] == "complete"
    assert (await napper.wait(timeout=10))["status"] == "complete"
    assert ran == ["napper"]
