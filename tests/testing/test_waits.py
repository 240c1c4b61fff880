"""Precise waits on `Instance`: a sleep versus an event wait, a step's start and end.

Each runs a real workflow on the `workflows_emulator` fixture (state in SQLite under the
test's tmp_path, virtual clock) and checks where the instance stands, and what time it is,
when the wait returns.
"""

from __future__ import annotations

import re

import pytest

from workflows_emulator import Emulator, EmulatorError
from workflows_saga import NonRetryableError, WorkflowEntrypoint

HOUR_MS = 3_600_000


class Onboarding(WorkflowEntrypoint):
    """A step, a retried step, a sleep, an event wait, another sleep, a last step."""

    async def run(self, event, step):
        @step.do("create account")
        async def create():
            return {"account": "a-1"}

        await create()
        failures = event["payload"].get("failures", 0)

        @step.do("send welcome", config={"retries": {"limit": 3, "delay": "10 minutes",
                                                     "backoff": "constant"}})
        async def welcome(ctx):
            if ctx["attempt"] <= failures:
                raise ValueError(f"mail server down (attempt {ctx['attempt']})")
            return "sent"

        await welcome()
        await step.sleep("cool-off", "1 hour")
        reply = await step.wait_for_event("survey", "survey-answer", timeout="2 days")
        await step.sleep("digest delay", "3 hours")

        @step.do("file answer")
        async def file_answer():
            return reply["payload"]

        return await file_answer()


class Refuses(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("check")
        async def check():
            raise NonRetryableError("refused")

        await check()
        await step.sleep("never", "1 hour")


async def test_wait_for_sleep_returns_when_the_sleep_starts_with_its_timer_ahead(
        workflows_emulator: Emulator) -> None:
    inst = await workflows_emulator.workflow(Onboarding).create(params={"failures": 2})
    start = workflows_emulator.clock.now_ms()
    row = await inst.wait_for_sleep("cool-off")
    assert (row.kind, row.name, row.state) == ("sleep", "cool-off", "running")
    # two retry delays of 10 minutes went by, and not a moment of the hour of sleep
    assert workflows_emulator.clock.now_ms() - start == 20 * 60_000
    assert inst.next_timer_in() == 3600.0
    assert (await inst.status())["status"] == "waiting"


async def test_a_sleep_is_told_apart_from_an_event_wait(workflows_emulator: Emulator) -> None:
    inst = await workflows_emulator.workflow(Onboarding).create(params={})
    await inst.wait_for_sleep()
    t0 = workflows_emulator.clock.now_ms()
    row = await inst.wait_for_event_wait("survey-answer")
    assert (row.kind, row.name, row.config) == ("wait", "survey", {"type": "survey-answer",
                                                                    "timeout": 2 * 24 * HOUR_MS})
    assert workflows_emulator.clock.now_ms() - t0 == HOUR_MS  # the sleep ran out, nothing more
    await inst.send_event("survey-answer", {"score": 9})
    row = await inst.wait_for_sleep("digest delay")
    assert row.state == "running" and workflows_emulator.clock.now_ms() - t0 == HOUR_MS
    assert (await inst.wait())["output"] == {"score": 9}


async def test_wait_for_event_wait_by_step_name(workflows_emulator: Emulator) -> None:
    inst = await workflows_emulator.workflow(Onboarding).create(params={})
    row = await inst.wait_for_event_wait(name="survey")
    assert row.label == "survey-1"


async def test_step_started_and_finished(workflows_emulator: Emulator) -> None:
    inst = await workflows_emulator.workflow(Onboarding).create(params={"failures": 1})
    started = await inst.wait_for_step_started("send welcome")
    assert started.kind == "do" and started.attempts >= 1
    finished = await inst.wait_for_step_finished("send welcome")
    assert (finished.state, finished.attempts, finished.output) == ("success", 2, "sent")
    # the step after it has not been reached in time: the sleep has not started yet
    assert not any(r.kind == "sleep" for r in inst.steps())
    again = await inst.wait_for_step_finished("send welcome-1")  # by label, already there
    assert again.output == "sent"


async def test_a_finished_instance_fails_the_wait_saying_what_happened(
        workflows_emulator: Emulator) -> None:
    inst = await workflows_emulator.workflow(Refuses).create(id="r-1")
    with pytest.raises(EmulatorError) as caught:
        await inst.wait_for_sleep("never")
    message = str(caught.value)
    assert 'waited for a step.sleep named "never" to start' in message
    assert "'r-1'" in message and "but it has finished" in message
    assert "status 'errored' (NonRetryableError: refused)" in message
    assert "check-1 (step.do, failure, 1 attempt, NonRetryableError: refused)" in message
    with pytest.raises(EmulatorError, match="has finished"):  # and again, once settled
        await inst.wait_for_event_wait()


async def test_a_wait_that_nothing_can_satisfy_names_the_event_wait_it_is_in(
        workflows_emulator: Emulator) -> None:
    class Waits(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.wait_for_event("approval", "approved", timeout="1 hour")
            await step.sleep("after", "1 hour")

    inst = await workflows_emulator.workflow(Waits).create()
    await inst.wait_for_event_wait("approved")
    with pytest.raises(EmulatorError) as caught:
        await inst.wait_for_event_wait("rejected")  # the wait times out, the instance goes on
    message = str(caught.value)
    assert 'a step.wait_for_event for event type "rejected"' in message
    assert "approval-1 (step.wait_for_event, failure" in message
    assert "WorkflowTimeoutError" in message


async def test_a_timeout_says_what_the_instance_is_doing(workflows_emulator: Emulator) -> None:
    import asyncio

    release = asyncio.Event()

    class Slow(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("slow call")
            async def slow():
                await release.wait()

            await slow()
            await step.sleep("later", "1 minute")

    inst = await workflows_emulator.workflow(Slow).create(id="s-1")
    with pytest.raises(TimeoutError) as caught:
        await inst.wait_for_sleep(timeout=0.2)
    assert re.search(r"step\.sleep to start in instance 's-1' .*timed out; it is at status "
                     r"'running'; latest steps: slow call-1 \(step\.do, running, 1 attempt\)",
                     str(caught.value)), str(caught.value)
    release.set()
    assert (await inst.wait_for_sleep("later")).state == "running"


async def test_a_paused_instance_is_named_as_such(workflows_emulator: Emulator) -> None:
    inst = await workflows_emulator.workflow(Onboarding).create(id="p-1", params={})
    await inst.wait_for_sleep("cool-off")
    await inst.pause()
    await workflows_emulator.settle()
    with pytest.raises(EmulatorError) as caught:
        await inst.wait_for_step_started("file answer")
    message = str(caught.value)
    assert "waited for step \"file answer\" to start in instance 'p-1'" in message
    assert "resume() it before waiting on it" in message
    assert "status 'paused'" in message and "cool-off-1 (step.sleep, running)" in message
