"""Lifecycle: create validation, create_batch, get, step limit, concurrency (issue 3, ref. 4.2, 8)."""

from __future__ import annotations

import asyncio

import pytest

from emulator_support import Gate
from workflows_emulator import Emulator, InstanceNotFoundError, WorkflowError
from workflows_saga import WorkflowEntrypoint


class Echo(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("echo", lambda: event["payload"])


@pytest.mark.parametrize("bad", ["-starts-with-dash", "has.dot", "has space", "x" * 101,
                                 "slash/../escape", "ünïcode"])
async def test_create_rejects_invalid_ids(bad: str, emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    with pytest.raises(WorkflowError, match="invalid id"):
        await wf.create(id=bad)
    assert await wf.list() == []


async def test_create_accepts_100_character_id_and_generates_ids(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    inst = await wf.create(id="a" * 100, params={"k": 1})
    assert (await inst.wait(timeout=10))["output"] == {"k": 1}
    generated = await wf.create(params={"k": 2})
    assert generated.id and generated.id != "a" * 100
    assert (await generated.wait(timeout=10))["output"] == {"k": 2}
    other = await wf.create()
    assert other.id != generated.id


async def test_create_rejects_a_duplicate_id_and_leaves_the_first_alone(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    inst = await wf.create(id="dup", params={"first": True})
    await inst.wait(timeout=10)
    with pytest.raises(WorkflowError, match='"dup" already exists'):
        await wf.create(id="dup", params={"first": False})
    status = await (await wf.get("dup")).status()
    assert status["output"] == {"first": True}


async def test_same_id_in_two_workflows_is_allowed(emu: Emulator) -> None:
    one = emu.workflow(Echo, name="one")
    two = emu.workflow(Echo, name="two")
    a = await one.create(id="same", params=1)
    b = await two.create(id="same", params=2)
    assert (await a.wait(timeout=10))["output"] == 1
    assert (await b.wait(timeout=10))["output"] == 2


async def test_params_over_one_mib_are_rejected(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    with pytest.raises(WorkflowError, match="1MiB"):
        await wf.create(id="big", params={"blob": "x" * (1 << 20)})
    with pytest.raises(InstanceNotFoundError):
        await wf.get("big")
    # just under the limit is fine
    ok = await wf.create(id="ok", params="y" * ((1 << 20) - 10))
    assert (await ok.wait(timeout=10))["status"] == "complete"


async def test_an_invalid_id_is_reported_before_invalid_params(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    with pytest.raises(WorkflowError, match="invalid id"):
        await wf.create(id="has space", params={"when": object()})


async def test_params_that_are_not_json_are_rejected(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    with pytest.raises(WorkflowError):
        await wf.create(id="bad", params={"when": object()})
    with pytest.raises(InstanceNotFoundError):
        await wf.get("bad")


async def test_step_output_over_one_mib_fails_the_step_clearly(emu: Emulator) -> None:
    class Big(WorkflowEntrypoint):
        async def run(self, event, step):
            return await step.do("big", lambda: "z" * (1 << 20), config={"retries": {"limit": 0, "delay": 0}})

    inst = await emu.workflow(Big, name="big").create(id="b1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert "Step big-1 output is too large. Maximum allowed size is 1MiB." in (
        status["error"]["message"])


async def test_create_batch_creates_up_to_100_and_skips_existing_ids(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    await wf.create(id="i-3", params="original")
    batch = [{"id": f"i-{n}", "params": n} for n in range(100)]
    created = await wf.create_batch(batch)
    ids = [i.id for i in created]
    assert len(ids) == 99
    assert "i-3" not in ids
    assert ids == [f"i-{n}" for n in range(100) if n != 3]
    for inst in created[:5]:
        status = await inst.wait(timeout=10)
        assert status["output"] == int(inst.id.split("-")[1])
    assert (await (await wf.get("i-3")).wait(timeout=10))["output"] == "original"
    assert len(await wf.list()) == 100

    again = await wf.create_batch([{"id": "i-0"}, {"id": "new", "params": "n"}])
    assert [i.id for i in again] == ["new"]


async def test_create_batch_over_100_is_rejected_and_creates_nothing(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    with pytest.raises(WorkflowError, match="100"):
        await wf.create_batch([{"id": f"i-{n}"} for n in range(101)])
    assert await wf.list() == []
    with pytest.raises(WorkflowError, match="at least 1"):
        await wf.create_batch([])


async def test_create_batch_with_an_invalid_id_creates_nothing(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    with pytest.raises(WorkflowError, match="invalid id"):
        await wf.create_batch([{"id": "good"}, {"id": "b.a.d"}])
    assert await wf.list() == []


async def test_get_unknown_id_is_not_found(emu: Emulator) -> None:
    wf = emu.workflow(Echo, name="echo")
    with pytest.raises(InstanceNotFoundError, match="not_found"):
        await wf.get("missing")
    inst = await wf.create(id="present", params=1)
    got = await wf.get("present")
    assert got.id == "present"
    assert (await got.wait(timeout=10))["output"] == 1
    await inst.wait(timeout=10)


async def test_step_limit_errors_naming_the_limit() -> None:
    ran: list[int] = []

    class Many(WorkflowEntrypoint):
        async def run(self, event, step):
            for i in range(5):
                await step.do(f"s{i}", lambda i=i: ran.append(i) or i)
            return "all"

    async with Emulator(step_limit=3) as emu:
        inst = await emu.workflow(Many, name="many").create(id="m1")
        status = await inst.wait(timeout=10)
        assert status["status"] == "errored"
        assert "limit of 3 steps" in status["error"]["message"]
        assert ran == [0, 1, 2]

    async with Emulator(step_limit=5) as emu:
        inst = await emu.workflow(Many, name="many").create(id="m1")
        assert (await inst.wait(timeout=10))["status"] == "complete"


@pytest.mark.workflows_emulator(step_limit=2)
async def test_step_limit_failure_rolls_back_earlier_steps(emu: Emulator) -> None:
    undone: list[str] = []

    class Many(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("a", lambda: 1, rollback=lambda rb: undone.append("a"))
            await step.do("b", lambda: 1, rollback=lambda rb: undone.append("b"))
            await step.do("c", lambda: 1, rollback=lambda rb: undone.append("c"))

    inst = await emu.workflow(Many, name="many").create(id="m1")
    status = await inst.wait(timeout=10)
    assert status["status"] == "errored"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert undone == ["b", "a"]


@pytest.mark.slow
async def test_default_step_limit_is_10000(emu: Emulator) -> None:
    class Many(WorkflowEntrypoint):
        async def run(self, event, step):
            for _i in range(10_001):
                await step.do("s", lambda: None)

    assert emu.step_limit == 10_000
    inst = await emu.workflow(Many, name="many").create(id="m1")
    status = await inst.wait(timeout=60)
    assert status["status"] == "errored"
    assert "limit of 10000 steps" in status["error"]["message"]


@pytest.mark.workflows_emulator(max_concurrency=2)
async def test_max_concurrency_queues_extra_instances(emu: Emulator) -> None:
    gates = {name: Gate() for name in ("a", "b", "c")}
    order: list[str] = []

    class Gated(WorkflowEntrypoint):
        async def run(self, event, step):
            name = event["payload"]
            await step.do("work", lambda: order.append(name) or gates[name](name))
            return name

    wf = emu.workflow(Gated, name="gated")
    a = await wf.create(id="a", params="a")
    b = await wf.create(id="b", params="b")
    c = await wf.create(id="c", params="c")
    await gates["a"].until_entered()
    await gates["b"].until_entered()
    await emu.settle()
    assert (await a.status())["status"] == "running"
    assert (await b.status())["status"] == "running"
    assert (await c.status())["status"] == "queued"
    assert [i["id"] for i in await wf.list(status="queued")] == ["c"]
    assert order == ["a", "b"]
    gates["a"].release.set()
    assert (await a.wait(timeout=10))["status"] == "complete"
    await gates["c"].until_entered()
    assert (await c.status())["status"] == "running"
    gates["b"].release.set()
    gates["c"].release.set()
    assert (await b.wait(timeout=10))["output"] == "b"
    assert (await c.wait(timeout=10))["output"] == "c"
    assert order == ["a", "b", "c"]


@pytest.mark.workflows_emulator(max_concurrency=1)
async def test_waiting_instances_do_not_hold_a_concurrency_slot(emu: Emulator) -> None:
    ran: list[str] = []

    class Sleeper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "1 hour")
            await step.do("after", lambda: ran.append("sleeper") or 1)

    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("work", lambda: ran.append("quick") or 1)

    sleeper = await emu.workflow(Sleeper, name="sleeper").create(id="s")
    await sleeper.wait(until={"waiting"}, timeout=10)
    quick = await emu.workflow(Quick, name="quick").create(id="q")
    await emu.advance("1 minute")
    assert (await quick.status())["status"] == "complete"
    assert (await sleeper.status())["status"] == "waiting"
    assert (await sleeper.wait(timeout=10))["status"] == "complete"
    assert ran == ["quick", "sleeper"]


@pytest.mark.workflows_emulator(max_concurrency=1)
async def test_instance_waking_from_sleep_goes_before_queued_ones(emu: Emulator) -> None:
    gate = Gate()
    order: list[str] = []

    class Sleeper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "1 hour")
            await step.do("after", lambda: order.append("sleeper") or 1)

    class Blocker(WorkflowEntrypoint):
        async def run(self, event, step):
            # a long attempt timeout: advancing the clock must not time this attempt out
            await step.do("block", lambda: gate(1), config={"timeout": "1 day"})

    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("work", lambda: order.append("queued") or 1)

    sleeper = await emu.workflow(Sleeper, name="sleeper").create(id="s")
    await sleeper.wait(until={"waiting"}, timeout=10)
    blocker = await emu.workflow(Blocker, name="blocker").create(id="b")
    await gate.until_entered()
    queued = await emu.workflow(Quick, name="quick").create(id="q")
    await emu.settle()
    assert (await queued.status())["status"] == "queued"
    # An explicit advance moves time even while a step callback is in flight (only
    # wait()'s automatic jumps hold back for running steps). The sleeper wakes, but
    # there is no slot for it yet.
    await asyncio.wait_for(emu.advance("1 hour"), 5)
    assert order == []
    gate.release.set()
    assert (await blocker.wait(timeout=10))["status"] == "complete"
    assert (await sleeper.wait(timeout=10))["status"] == "complete"
    assert (await queued.wait(timeout=10))["status"] == "complete"
    assert order == ["sleeper", "queued"]
