"""Lifecycle: ``step.sleep`` / ``step.sleep_until`` on the virtual clock (issue 3, reference 2.4)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from emulator_support import first_ts, labels
from workflows_emulator import Emulator
from workflows_saga import WorkflowEntrypoint

HOUR = 3_600_000
DAY = 24 * HOUR


async def test_sleeping_instance_is_waiting_and_wakes_exactly_on_time(emu: Emulator) -> None:
    ran: list[str] = []

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("before", lambda: ran.append("before") or 1)
            await step.sleep("nap", "3 hours")
            await step.do("after", lambda: ran.append("after") or 2)
            return "done"

    wf = emu.workflow(Napper, name="napper")
    inst = await wf.create(id="n1")
    status = await inst.wait(until={"waiting"}, timeout=10)
    assert status["status"] == "waiting"
    assert ran == ["before"]
    assert [i["status"] for i in await wf.list()] == ["waiting"]

    await emu.advance("2 hours")
    assert (await inst.status())["status"] == "waiting"
    assert ran == ["before"]

    await emu.advance("59 minutes")
    assert (await inst.status())["status"] == "waiting"
    assert ran == ["before"]

    await emu.advance("1 minute")
    status = await inst.wait(timeout=10)
    assert status == {"status": "complete", "error": None, "output": "done", "rollback": None}
    assert ran == ["before", "after"]
    assert first_ts(inst, "SLEEP_COMPLETE", "nap-1") - first_ts(
        inst, "SLEEP_START", "nap-1"
    ) == 3 * HOUR


async def test_thirty_day_sleep_costs_milliseconds_of_wall_time(emu: Emulator) -> None:
    class LongNap(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("month", "30 days")
            return "rested"

    wf = emu.workflow(LongNap, name="long-nap")
    started_virtual = emu.clock.now_ms()
    t0 = time.perf_counter()
    inst = await wf.create(id="l1")
    status = await inst.wait(timeout=10)
    elapsed = time.perf_counter() - t0
    assert status["status"] == "complete"
    assert status["output"] == "rested"
    assert emu.clock.now_ms() - started_virtual >= 30 * DAY
    # "a 30-day sleep test takes milliseconds of wall time"
    assert elapsed < 0.25, f"a virtual 30-day sleep took {elapsed:.3f}s of wall time"


async def test_advance_thirty_days_is_fast_and_exact(emu: Emulator) -> None:
    class LongNap(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("month", "30 days")
            return "rested"

    wf = emu.workflow(LongNap, name="long-nap")
    inst = await wf.create(id="l1")
    await inst.wait(until={"waiting"}, timeout=10)
    t0 = time.perf_counter()
    await emu.advance("29 days")
    assert (await inst.status())["status"] == "waiting"
    await emu.advance("1 day")
    assert (await inst.status())["status"] == "complete"
    assert time.perf_counter() - t0 < 0.5


async def test_sleep_until_datetime_and_epoch_ms(emu: Emulator) -> None:
    start = emu.clock.now_ms()
    target_dt = datetime.fromtimestamp((start + 5 * HOUR) / 1000.0, tz=UTC)
    target_ms = start + 7 * HOUR

    class Alarm(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep_until("until-dt", target_dt)
            await step.sleep_until("until-ms", target_ms)
            return "woke"

    wf = emu.workflow(Alarm, name="alarm")
    inst = await wf.create(id="a1")
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("4 hours")
    assert [s for _, s in labels(inst, "SLEEP_COMPLETE")] == []
    await emu.advance("1 hour")
    assert [s for _, s in labels(inst, "SLEEP_COMPLETE")] == ["until-dt-1"]
    assert (await inst.status())["status"] == "waiting"
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert first_ts(inst, "SLEEP_COMPLETE", "until-dt-1") == pytest.approx(start + 5 * HOUR)
    assert first_ts(inst, "SLEEP_COMPLETE", "until-ms-1") == pytest.approx(target_ms)


async def test_sleep_until_the_past_is_rejected_with_cloudflares_message(emu: Emulator) -> None:
    caught: list[str] = []

    class TimeTraveler(WorkflowEntrypoint):
        async def run(self, event, step):
            past = datetime(2001, 1, 1, tzinfo=UTC)
            try:
                await step.sleep_until("yesterday", past)
            except Exception as exc:
                caught.append(str(exc))
            await step.sleep_until("epoch-ms", 1_000)  # uncaught this time

    wf = emu.workflow(TimeTraveler, name="time-traveler")
    inst = await wf.create(id="t1")
    status = await inst.wait(timeout=10)
    msg = "You can't sleep until a time in the past, time-traveler"
    assert len(caught) == 1 and msg in caught[0]
    assert status["status"] == "errored"
    assert msg in status["error"]["message"]
    assert status["rollback"] is None


async def test_sleep_until_the_past_triggers_rollback_when_uncaught(emu: Emulator) -> None:
    undone: list[str] = []

    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("reserve", lambda: "r-1", rollback=lambda rb: undone.append(rb.output))
            await step.sleep_until("too-late", 1_000)

    inst = await emu.workflow(Saga, name="saga").create(id="s1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert "time-traveler" in status["error"]["message"]
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert undone == ["r-1"]


async def test_sleep_longer_than_365_days_is_rejected(emu: Emulator) -> None:
    class Forever(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("forever", "366 days")

    inst = await emu.workflow(Forever, name="forever").create(id="f1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert "365 days" in status["error"]["message"]


async def test_sleeps_have_their_own_name_counter(emu: Emulator) -> None:
    class Shared(WorkflowEntrypoint):
        async def run(self, event, step):
            a = await step.do("x", lambda ctx: ctx["step"]["count"])
            await step.sleep("x", "1 minute")
            b = await step.do("x", lambda ctx: ctx["step"]["count"])
            await step.sleep("x", "1 minute")
            await step.sleep("other", "1 second")
            return [a, b]

    inst = await emu.workflow(Shared, name="shared").create(id="s1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    # do-steps count 1, 2 whatever sleeps share their name
    assert status["output"] == [1, 2]
    assert [s for _, s in labels(inst, "SLEEP_START")] == ["x-1", "x-2", "other-1"]
    assert [s for _, s in labels(inst, "STEP_START")] == ["x-1", "x-2"]


@pytest.mark.workflows_emulator(step_limit=2)
async def test_sleeps_do_not_count_toward_the_step_limit(emu: Emulator) -> None:
    class Sleepy(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("one", lambda: 1)
            for i in range(5):
                await step.sleep(f"nap-{i}", "1 second")
            await step.do("two", lambda: 2)
            return "ok"

    inst = await emu.workflow(Sleepy, name="sleepy").create(id="s1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete", status


async def test_sleep_keeps_the_same_deadline_when_run_is_replayed_after_pause(emu: Emulator) -> None:
    """A replay of run() must not start the sleep over (the timer is durable)."""
    ran: list[str] = []

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("before", lambda: ran.append("before") or 1)
            await step.sleep("nap", "10 hours")
            await step.do("after", lambda: ran.append("after") or 2)

    inst = await emu.workflow(Napper, name="napper").create(id="n1")
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("4 hours")
    await inst.pause()
    assert (await inst.status())["status"] == "paused"
    await inst.resume()
    await inst.wait(until={"waiting"}, timeout=10)
    await emu.advance("5 hours")
    assert (await inst.status())["status"] == "waiting"
    await emu.advance("1 hour")
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete"
    assert ran == ["before", "after"]
    assert first_ts(inst, "SLEEP_COMPLETE", "nap-1") - first_ts(
        inst, "SLEEP_START", "nap-1"
    ) == 10 * HOUR


async def test_sleep_duration_forms(emu: Emulator) -> None:
    from datetime import timedelta

    class Forms(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("week", "1 week")
            await step.sleep("ms", 90_000)
            await step.sleep("td", timedelta(minutes=5))
            await step.sleep("plural", "2 days")

    inst = await emu.workflow(Forms, name="forms").create(id="f1")
    assert (await inst.wait(timeout=10))["status"] == "complete"
    spans = {
        s: first_ts(inst, "SLEEP_COMPLETE", s) - first_ts(inst, "SLEEP_START", s)
        for s in ("week-1", "ms-1", "td-1", "plural-1")
    }
    assert spans == {"week-1": 7 * DAY, "ms-1": 90_000, "td-1": 300_000,
                     "plural-1": 2 * DAY}


async def test_sleep_with_an_invalid_duration_fails_the_instance(emu: Emulator) -> None:
    class Bad(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("bad", "3 fortnights")

    inst = await emu.workflow(Bad, name="bad").create(id="b1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert "3 fortnights" in status["error"]["message"]
