"""The output gate (`output_gate.open_gate`): a held step result is on disk before anything
can follow from it, in this instance, in another one, or outside the emulator.

Each test arranges for something to act right after a step, before the instance commits
anything of its own, and checks that the step's result was on disk by then (or, with a
crash right there, that the step is not run again).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator, StorageError
from workflows_emulator.durable_object import DurableObjectNamespace, StorageHooks, install_hooks
from workflows_emulator.instance_store import InstanceStore
from workflows_emulator.workers_shim.http import Response
from workflows_emulator.workers_shim.outbound import fetch, route_fetch
from workflows_saga import WorkflowEntrypoint

calls: list[str] = []
gate: asyncio.Event


@pytest.fixture(autouse=True)
def _fresh() -> None:
    global gate
    calls.clear()
    gate = asyncio.Event()  # one per test: an event belongs to the loop that first waits on it


def on_disk(path: Path) -> list[tuple[str, str | None]]:
    """The log as another connection (the CLI, another process) sees it."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT event, step FROM log ORDER BY id"))
    finally:
        conn.close()


class Child(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        return event["payload"]


class Parent(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        n = await step.do("charge", lambda: calls.append("charge") or len(calls))
        # Straight on, without waiting on anything: another instance is created from it.
        await self.env["CHILD"].create_batch([{"id": "receipt", "params": {"charge": n}}])
        return n


async def test_a_crash_as_run_creates_another_instance_does_not_rerun_the_step(
        tmp_path: Path) -> None:
    emu = Emulator(tmp_path)
    child = emu.workflow(Child, name="child")
    parent = emu.workflow(Parent, name="parent", env={"CHILD": child})
    crash = emu.crash_at("WORKFLOW_QUEUED", nth=2)  # the child's creation
    await crash.wait(await parent.create(id="p"))
    assert ("STEP_SUCCESS", "charge-1") in on_disk(tmp_path / "instances/parent/p.sqlite")
    async with Emulator(tmp_path) as again:
        child = again.workflow(Child, name="child")
        parent = again.workflow(Parent, name="parent", env={"CHILD": child})
        assert (await (await parent.get("p")).wait())["output"] == 1
        assert (await (await child.get("receipt")).wait())["output"] == {"charge": 1}
    assert calls == ["charge"]


class Charge(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("charge", lambda: calls.append("A") or "ok",
                      config={"retries": {"limit": 0, "delay": 0}})
        await asyncio.sleep(0)  # waits on something: another instance's turn may come first
        return "A done"


class Other(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        return await step.do("b", lambda: "b")


async def test_another_instance_commits_held_results_before_its_own(tmp_path: Path) -> None:
    emu = Emulator(tmp_path)
    charge, other = emu.workflow(Charge, name="a"), emu.workflow(Other, name="b")
    crash = emu.crash_at("ATTEMPT_START", step="b-1")
    a = await charge.create(id="a")
    await other.create(id="b")
    await crash.wait(a)
    async with Emulator(tmp_path) as again:
        again.workflow(Other, name="b")
        status = await (await again.workflow(Charge, name="a").get("a")).wait()
    # Had the crash lost A's result, its cut-off attempt (no retry left) would fail it.
    assert status["status"] == "complete" and calls == ["A"]


class ThenWaits(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("a", lambda: "a")
        await gate.wait()
        return "done"


async def test_a_subscriber_is_shown_a_result_once_it_is_on_disk(tmp_path: Path) -> None:
    async with Emulator(tmp_path) as emu:
        inst = await emu.workflow(ThenWaits, name="w").create(id="i")
        async for event in inst.subscribe():
            if event["type"] == "step_completed":
                assert on_disk(tmp_path / "instances/w/i.sqlite")[-1] == ("STEP_SUCCESS", "a-1")
                break
        gate.set()
        assert (await inst.wait())["output"] == "done"


async def test_a_wait_returns_a_result_once_it_is_on_disk(tmp_path: Path) -> None:
    async with Emulator(tmp_path) as emu:
        inst = await emu.workflow(ThenWaits, name="w").create(id="i")
        row = await inst.wait_for_step_finished("a")
        assert row.state == "success"
        assert on_disk(tmp_path / "instances/w/i.sqlite")[-1] == ("STEP_SUCCESS", "a-1")
        gate.set()
        await inst.wait()


class FetchesAfter(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("a", lambda: "a")
        return await (await fetch("https://example.test/notify")).text()


async def test_an_outbound_request_leaves_once_the_result_is_on_disk(tmp_path: Path) -> None:
    seen: list[list[tuple[str, str | None]]] = []

    async def server(_request: Any) -> Response:
        seen.append(on_disk(tmp_path / "instances/w/i.sqlite"))
        return Response("noted")

    with route_fetch(server):
        async with Emulator(tmp_path) as emu:
            inst = await emu.workflow(FetchesAfter, name="w").create(id="i")
            assert (await inst.wait())["output"] == "noted"
    assert seen and seen[0][-1] == ("STEP_SUCCESS", "a-1")


class FullOnce(StorageHooks):
    """Fails every commit to an instance file while ``on`` (a full disk)."""

    def __init__(self) -> None:
        self.on = False
        self.used = False

    def before_commit(self, path: Path) -> None:
        if self.on and "instances" in path.parts:
            raise sqlite3.OperationalError("database or disk is full")


full = FullOnce()


class TwoSteps(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("a", lambda: calls.append("a") or "a",
                      config={"retries": {"limit": 0, "delay": 0}})
        if not full.used:
            full.used = full.on = True  # the disk fills up as b is about to start
        return await step.do("b", lambda: calls.append("b") or "b")


async def test_a_full_disk_keeps_the_result_it_held_back(tmp_path: Path) -> None:
    full.on = full.used = False
    previous = install_hooks(full)
    try:
        async with Emulator(tmp_path) as emu:
            inst = await emu.workflow(TwoSteps, name="w").create(id="i")
            with pytest.raises(StorageError, match="full"):
                await inst.wait()
            full.on = False  # room again: the instance resumes from what it holds
            final = await inst.wait()
    finally:
        install_hooks(previous)
    assert final["status"] == "complete" and final["output"] == "b"
    assert calls == ["a", "b"]


class RaiseAfterCommit(StorageHooks):
    def __init__(self) -> None:
        self.armed = False

    def after_commit(self, path: Path) -> None:
        if self.armed:
            self.armed = False
            raise RuntimeError("a hook failed after the commit")


async def test_a_failure_after_a_commit_that_went_through_writes_nothing_twice(
        tmp_path: Path) -> None:
    store = InstanceStore.open(DurableObjectNamespace(tmp_path), "x")
    hooks = RaiseAfterCommit()
    previous = install_hooks(hooks)
    try:
        with store.transaction():
            store.append("STEP_START", 1.0, key="do:a:1", label="a-1",
                         data={"kind": "do", "name": "a", "count": 1, "seq": 0, "config": None})
        with store.deferred():
            store.append("STEP_SUCCESS", 2.0, store.rows["do:a:1"], data={"output": 7})
        hooks.armed = True
        with pytest.raises(RuntimeError, match="after the commit"), store.transaction():
            store.append("WORKFLOW_SUCCESS", 3.0)
        assert store.fault is None
        assert [e for e, _ in on_disk(tmp_path / "x.sqlite")] == [
            "STEP_START", "STEP_SUCCESS", "WORKFLOW_SUCCESS"]
    finally:
        install_hooks(previous)
        store.close()


class ChargeThenNotify(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("charge", lambda: calls.append("charge") or "ok")
        if not full.used:
            full.used = full.on = True  # the disk fills while the result is held
        return await (await fetch("https://example.test/notify")).text()


async def test_a_result_that_cannot_be_written_stops_what_follows_from_it(
        tmp_path: Path) -> None:
    async def server(_request: Any) -> Response:
        calls.append("notify")
        return Response("noted")

    full.on = full.used = False
    previous = install_hooks(full)
    try:
        with route_fetch(server):
            async with Emulator(tmp_path) as emu:
                inst = await emu.workflow(ChargeThenNotify, name="w").create(id="i")
                with pytest.raises(StorageError, match="full"):
                    await inst.wait()
                assert calls == ["charge"]  # the request did not leave
                full.on = False
                final = await inst.wait()  # room again: the held result goes first
    finally:
        full.on = False
        install_hooks(previous)
    assert final["output"] == "noted" and calls == ["charge", "notify"]


class Finished(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        return 1


class Deleter(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("charge", lambda: "ok")
        await self.env["OTHER"].delete_instance("y")
        return "done"


async def test_deleting_another_instance_waits_for_the_held_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str | None]] = []
    remove = DurableObjectNamespace.remove

    def watched(self: DurableObjectNamespace, name: str) -> None:
        if name == "y":
            seen.append(on_disk(tmp_path / "instances/x/x.sqlite")[-1])
        remove(self, name)

    monkeypatch.setattr(DurableObjectNamespace, "remove", watched)
    async with Emulator(tmp_path) as emu:
        other = emu.workflow(Finished, name="o")
        await (await other.create(id="y")).wait()
        deleter = emu.workflow(Deleter, name="x", env={"OTHER": other})
        assert (await (await deleter.create(id="x")).wait())["output"] == "done"
    assert seen == [("STEP_SUCCESS", "charge-1")]


async def test_introspection_shows_a_result_once_it_is_on_disk(tmp_path: Path) -> None:
    from workflows_emulator.introspection import WorkflowInstanceIntrospector

    async with Emulator(tmp_path) as emu:
        wf = emu.workflow(ThenWaits, name="w")
        await wf.create(id="i")
        assert await WorkflowInstanceIntrospector(wf, "i").wait_for_step_result("a") == "a"
        assert on_disk(tmp_path / "instances/w/i.sqlite")[-1] == ("STEP_SUCCESS", "a-1")
        gate.set()
        await (await wf.get("i")).wait()


class Holder:
    def __init__(self) -> None:
        self.commits = 0

    def commit_deferred(self) -> None:
        self.commits += 1


def test_each_thread_opens_its_own_gate() -> None:
    # An emulator's stores belong to the thread that runs its loop: another thread's gate
    # never commits them (over a connection that thread does not own).
    from workflows_emulator import output_gate

    mine = Holder()
    output_gate.hold(mine)
    try:
        elsewhere = threading.Thread(target=output_gate.open_gate)
        elsewhere.start()
        elsewhere.join()
        assert mine.commits == 0
        output_gate.open_gate()
        assert mine.commits == 1
    finally:
        output_gate.release(mine)
