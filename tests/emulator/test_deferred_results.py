"""A step's result is committed with what comes next (`InstanceStore.deferred`).

A run of steps costs one commit each: the next step's start carries the previous result.
The result is still on disk before anything that could depend on it: the next callback, the
run waiting on anything, the instance's end, a read of the log, the store's release or close.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator, output_gate
from workflows_emulator.durable_object import DurableObjectNamespace, StorageHooks, install_hooks
from workflows_emulator.errors import StorageError
from workflows_emulator.instance_store import InstanceStore
from workflows_emulator.records import InstanceMeta, LogEvent
from workflows_saga import WorkflowEntrypoint

outside = asyncio.Event()
a_ran = asyncio.Event()


class CountCommits(StorageHooks):
    def __init__(self, name: str) -> None:
        self.name = name
        self.commits = 0

    def after_commit(self, path: Path) -> None:
        if path.name == self.name:
            self.commits += 1


def committed_events(path: Path) -> list[tuple[str, str | None]]:
    """The log as another connection sees it: only what was committed."""
    conn = sqlite3.connect(path)
    try:
        return [(e, s) for e, s in conn.execute("SELECT event, step FROM log ORDER BY id")]
    finally:
        conn.close()


class Steps(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        for i in range(event["payload"]["n"]):
            await step.do("s", lambda i=i: i)
        return "done"


class WaitsOutside(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("a", lambda: a_ran.set() or "a")
        await outside.wait()  # not a step: the run just waits on something
        return await step.do("b", lambda: "b")


async def test_a_run_of_steps_costs_one_commit_per_step(tmp_path: Path) -> None:
    counter = CountCommits("i.sqlite")
    previous = install_hooks(counter)
    try:
        async with Emulator(tmp_path) as emu:
            inst = await emu.workflow(Steps, name="w").create(id="i", params={"n": 50})
            assert (await inst.wait())["output"] == "done"
    finally:
        install_hooks(previous)
    # 50 steps: 50 commits that each start a step (and carry the previous result), plus
    # the instance's own (created, started, finished): far from the 100 of two per step.
    assert 50 <= counter.commits <= 56
    events = committed_events(tmp_path / "instances" / "w" / "i.sqlite")
    assert events.count(("STEP_SUCCESS", "s-50")) == 1 and events[-1][0] == "WORKFLOW_SUCCESS"


async def test_a_result_is_on_disk_once_the_run_waits_on_anything(tmp_path: Path) -> None:
    outside.clear()
    a_ran.clear()
    async with Emulator(tmp_path) as emu:
        inst = await emu.workflow(WaitsOutside, name="w").create(id="i")
        await asyncio.wait_for(a_ran.wait(), 5)
        for _ in range(3):
            await asyncio.sleep(0)  # the run is parked on `outside` by now
        events = committed_events(tmp_path / "instances" / "w" / "i.sqlite")
        assert events[-2:] == [("ATTEMPT_SUCCESS", "a-1"), ("STEP_SUCCESS", "a-1")]
        outside.set()
        assert (await inst.wait())["output"] == "b"


def open_store(tmp_path: Path) -> InstanceStore:
    return InstanceStore.open(DurableObjectNamespace(tmp_path), "x")


def append_start(store: InstanceStore) -> None:
    with store.transaction():
        store.append("STEP_START", 1.0, key="do:a:1", label="a-1",
                     data={"kind": "do", "name": "a", "count": 1, "seq": 0, "config": None})


def append_result(store: InstanceStore) -> None:
    row = store.rows["do:a:1"]
    with store.deferred():
        store.append("STEP_SUCCESS", 2.0, row, data={"output": 7})


def test_closing_the_store_commits_what_was_deferred(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    append_start(store)
    append_result(store)  # no event loop here: committed at once
    store.close()
    assert committed_events(tmp_path / "x.sqlite") == [("STEP_START", "a-1"),
                                                       ("STEP_SUCCESS", "a-1")]


async def test_a_deferred_result_is_committed_by_the_next_transaction_or_read(
        tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        append_start(store)
        append_result(store)
        assert committed_events(tmp_path / "x.sqlite") == [("STEP_START", "a-1")]
        assert [e["event"] for e in store.entries()] == ["STEP_START", "STEP_SUCCESS"]
        assert committed_events(tmp_path / "x.sqlite")[-1] == ("STEP_SUCCESS", "a-1")
    finally:
        store.close()


class FailNextCommit(StorageHooks):
    def __init__(self) -> None:
        self.armed = False

    def before_commit(self, path: Path) -> None:
        if self.armed:
            self.armed = False
            raise sqlite3.OperationalError("database or disk is full")


async def test_a_failed_transaction_still_commits_the_result_it_carried(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        append_start(store)
        append_result(store)
        with pytest.raises(RuntimeError, match="the engine gave up"), store.transaction():
            store.append("WORKFLOW_FAILURE", 3.0, data={"error": {"name": "E", "message": "m"}})
            raise RuntimeError("the engine gave up")
        assert committed_events(tmp_path / "x.sqlite")[-1] == ("STEP_SUCCESS", "a-1")
        assert store.rows["do:a:1"].state == "success"
    finally:
        store.close()


async def test_a_storage_fault_keeps_the_results_it_held_back(tmp_path: Path) -> None:
    # The process is alive and holds the result: once the fault clears it is written first,
    # with its own ids, and the step is not run again.
    store = open_store(tmp_path)
    hooks = FailNextCommit()
    previous = install_hooks(hooks)
    try:
        append_start(store)
        append_result(store)
        hooks.armed = True
        with pytest.raises(StorageError, match="full"):
            store.commit_deferred()
        assert store.fault is not None
        assert committed_events(tmp_path / "x.sqlite") == [("STEP_START", "a-1")]
        store.clear_fault()
        assert store.rows["do:a:1"].state == "success"
        with store.transaction():
            store.append("WORKFLOW_SUCCESS", 3.0, data={"output": 7})
        assert committed_events(tmp_path / "x.sqlite") == [
            ("STEP_START", "a-1"), ("STEP_SUCCESS", "a-1"), ("WORKFLOW_SUCCESS", None)]
    finally:
        install_hooks(previous)
        store.close()


async def test_forgetting_a_step_forgets_its_deferred_result_too(tmp_path: Path) -> None:
    # restart(from_step=...) forgets steps in a transaction that may carry their results.
    store = open_store(tmp_path)
    try:
        append_start(store)
        append_result(store)
        with store.transaction():
            store.forget({"do:a:1"})
        store.load()
        assert committed_events(tmp_path / "x.sqlite") == [] and store.rows == {}
    finally:
        store.close()


class OneStep(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        return await step.do("only", lambda: 1)


class WaitsBeforeAnyStep(WorkflowEntrypoint):
    before_any_step: asyncio.Event

    async def run(self, event: Any, step: Any) -> Any:
        await self.before_any_step.wait()
        return await step.do("only", lambda: 1)


async def test_the_running_mark_rides_on_the_first_step_start(tmp_path: Path) -> None:
    """Created, running + first step started, finished: three commits for a one-step
    instance (the running mark no longer has a commit of its own)."""
    counter = CountCommits("i.sqlite")
    previous = install_hooks(counter)
    try:
        async with Emulator(tmp_path) as emu:
            inst = await emu.workflow(OneStep, name="w").create(id="i")
            assert (await inst.wait())["status"] == "complete"
    finally:
        install_hooks(previous)
    assert counter.commits == 3
    events = [e for e, _ in committed_events(tmp_path / "instances" / "w" / "i.sqlite")]
    assert events[:3] == ["WORKFLOW_QUEUED", "WORKFLOW_START", "STEP_START"]


async def test_the_running_mark_is_on_disk_once_the_run_waits_on_anything(
        tmp_path: Path) -> None:
    WaitsBeforeAnyStep.before_any_step = asyncio.Event()
    async with Emulator(tmp_path) as emu:
        inst = await emu.workflow(WaitsBeforeAnyStep, name="w").create(id="i")
        for _ in range(5):
            await asyncio.sleep(0)
        path = tmp_path / "instances" / "w" / "i.sqlite"
        conn = sqlite3.connect(path)
        try:
            meta = conn.execute("SELECT value FROM _kv WHERE key = 'meta'").fetchone()[0]
        finally:
            conn.close()
        assert '"status": "running"' in meta
        assert [e for e, _ in committed_events(path)] == ["WORKFLOW_QUEUED", "WORKFLOW_START"]
        assert (await inst.status())["status"] == "running"
        WaitsBeforeAnyStep.before_any_step.set()
        assert (await inst.wait())["status"] == "complete"


def _meta(version: int) -> InstanceMeta:
    return InstanceMeta("i", "w", {"v": version}, 0.0)


def _committed_params(folder: Path) -> Any:
    """The params of the metadata committed to ``folder``'s instance file ``i``."""
    conn = sqlite3.connect(folder / "i.sqlite")
    try:
        return json.loads(conn.execute("SELECT value FROM _kv").fetchone()[0])["params"]
    finally:
        conn.close()


async def test_a_held_meta_write_is_committed_by_the_next_transaction(tmp_path: Path) -> None:
    ns = DurableObjectNamespace(tmp_path)
    store = InstanceStore.open(ns, "i")
    try:
        with store.transaction():
            store.write_meta(_meta(1))
        with store.deferred():
            store.write_meta(_meta(2))
        assert _committed_params(tmp_path) == {"v": 1}  # held: not on disk yet
        assert output_gate.holds(store)
        with store.transaction():
            store.append(LogEvent.EVENT_RECEIVED, 1.0)
        assert _committed_params(tmp_path) == {"v": 2}
        # A newer write in the transaction that carries a held one wins.
        with store.deferred():
            store.write_meta(_meta(3))
        with store.transaction():
            store.write_meta(_meta(4))
        assert _committed_params(tmp_path) == {"v": 4}
        # Held and then closed: written on the way out.
        with store.deferred():
            store.write_meta(_meta(5))
    finally:
        store.close()
    assert _committed_params(tmp_path) == {"v": 5}


async def test_a_held_meta_write_survives_a_failed_transaction_that_superseded_it(
        tmp_path: Path) -> None:
    # The newer write is rolled back with its transaction, so the held one is still owed:
    # it is written once the fault clears (losing it would leave the instance "queued").
    hooks = FailNextCommit()
    previous = install_hooks(hooks)
    store = InstanceStore.open(DurableObjectNamespace(tmp_path), "i")
    try:
        with store.transaction():
            store.write_meta(_meta(1))
        with store.deferred():
            store.write_meta(_meta(2))
            store.append(LogEvent.EVENT_RECEIVED, 1.0)
        hooks.armed = True
        with pytest.raises(StorageError, match="full"), store.transaction():
            store.write_meta(_meta(3))
            assert store.read_meta().params == {"v": 3}  # the transaction sees its own write
        assert store.fault is not None
        assert _committed_params(tmp_path) == {"v": 1}
        store.clear_fault()
        assert _committed_params(tmp_path) == {"v": 2}
        assert store.read_meta().params == {"v": 2}
    finally:
        install_hooks(previous)
        store.close()
