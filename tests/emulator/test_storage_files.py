"""State files: schema versions, the index's one owner, and the quiescence assumption."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator, EmulatorError
from workflows_emulator.durable_object import DurableObjectStorage, StorageHooks, install_hooks
from workflows_emulator.instance_index import InstanceIndex
from workflows_emulator.quiescence import has_ready_callbacks


def test_a_file_of_another_schema_version_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "obj.sqlite"
    DurableObjectStorage(path, "", 3).close()
    with pytest.raises(EmulatorError) as caught:
        DurableObjectStorage(path, "", 4)
    text = str(caught.value)
    assert str(path) in text and "version 3" in text and "version 4" in text
    DurableObjectStorage(path, "", 3).close()  # still readable by its own version


class Once:
    async def run(self, event: Any, step: Any) -> Any:
        return await step.do("a", lambda: 1)


async def test_an_older_instance_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Emulator(state) as emu:
        await (await emu.workflow(Once, name="once").create(id="old")).wait()
    conn = sqlite3.connect(state / "instances" / "once" / "old.sqlite")
    conn.execute("PRAGMA user_version=0")  # as the emulator before versioned files wrote it
    conn.close()
    async with Emulator(state) as emu:
        inst = await emu.workflow(Once, name="once").get("old")
        with pytest.raises(EmulatorError, match=r"schema version 0.*reads version 1.*new state dir"):
            await inst.status()
        [row] = await emu.workflow(Once, name="once").list()
        assert row["status"] == "unknown" and "schema version 0" in row["problem"]


async def test_an_index_of_another_version_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Emulator(state) as emu:
        await (await emu.workflow(Once, name="once").create(id="kept")).wait()
    conn = sqlite3.connect(state / "index.sqlite")
    conn.execute("PRAGMA user_version=1")  # the layout before the index had a problem column
    conn.close()
    async with Emulator(state) as emu:
        rows = await emu.workflow(Once, name="once").list()
        assert [(r["id"], r["status"]) for r in rows] == [("kept", "complete")]
    assert list((state / "quarantine" / "index").glob("index.*.sqlite"))


def test_the_index_lists_and_reports_unfinished_instances(tmp_path: Path) -> None:
    index = InstanceIndex(tmp_path)
    index.add("wf", "a", "queued", 1.0)
    index.add("wf", "b", "queued", 2.0)
    index.set_status("wf", "a", "complete", 3.0)
    assert index.exists("wf", "a") and not index.exists("other", "a")
    assert index.unfinished("wf") == ["b"]
    assert [r["id"] for r in index.list("wf")] == ["a", "b"]
    assert [r["id"] for r in index.list("wf", "complete")] == ["a"]
    index.remove("wf", "a")
    assert not index.exists("wf", "a")
    index.close()
    index.close()  # closing twice is harmless


def _indexed(state: Path) -> list[tuple[str, str, float, float]]:
    """The index as another connection sees it (what is committed)."""
    conn = sqlite3.connect(state / "index.sqlite")
    try:
        return conn.execute("SELECT id, status, created, modified FROM instances ORDER BY id").fetchall()
    finally:
        conn.close()


async def test_new_instances_are_indexed_with_the_statuses_in_one_commit(tmp_path: Path) -> None:
    """A creation is indexed after its own commit, with the status changes made meanwhile
    (one index commit for many instances), and is known at once in this process."""
    index = InstanceIndex(tmp_path)
    try:
        index.add("wf", "a", "queued", 1.0)
        index.set_status("wf", "a", "running", 2.0)
        index.add("wf", "b", "queued", 3.0)
        assert _indexed(tmp_path) == []  # not written yet: the index may lag, never lead
        assert index.exists("wf", "a") and index.exists("wf", "b")
        assert [(r["id"], r["status"]) for r in index.list("wf")] == [("a", "running"),
                                                                      ("b", "queued")]
        assert _indexed(tmp_path) == [("a", "running", 1.0, 2.0), ("b", "queued", 3.0, 3.0)]
        index.add("wf", "c", "queued", 4.0)
        index.remove("wf", "c")  # deleted before it was written: never written
        index.flush()
        assert [row[0] for row in _indexed(tmp_path)] == ["a", "b"]
    finally:
        index.close()


class FailIndexCommits(StorageHooks):
    def __init__(self) -> None:
        self.on = True

    def before_commit(self, path: Path) -> None:
        if self.on and path.name == "index.sqlite":
            raise sqlite3.OperationalError("database or disk is full")


async def test_instances_are_listed_while_the_index_cannot_be_written(tmp_path: Path) -> None:
    """The index is a cache: a full disk under it fails no create, hides no instance from
    list(), and it catches up once it can be written."""
    state = tmp_path / "state"
    fault = FailIndexCommits()
    previous = install_hooks(fault)
    try:
        async with Emulator(state) as emu:
            wf = emu.workflow(Once, name="once")
            first = await wf.create(id="first")
            await first.wait()
            second = await wf.create(id="second")
            listed = await wf.list()
            assert [(r["id"], r["status"]) for r in listed] == [("first", "complete"),
                                                              ("second", "queued")]
            assert [r["id"] for r in await wf.list("complete")] == ["first"]
            assert _indexed(state) == []
            fault.on = False
            await second.wait()
            assert [r["id"] for r in await wf.list()] == ["first", "second"]
            assert [row[:2] for row in _indexed(state)] == [("first", "complete"),
                                                             ("second", "complete")]
    finally:
        install_hooks(previous)


async def test_an_instance_is_listed_and_found_as_soon_as_create_returns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Emulator(state) as emu:
        wf = emu.workflow(Once, name="once")
        inst = await wf.create(id="first")
        assert (await wf.get("first")).id == "first"
        with pytest.raises(EmulatorError, match="already exists"):
            await wf.create(id="first")
        assert [r["id"] for r in await wf.list()] == ["first"]
        assert [row[0] for row in _indexed(state)] == ["first"]
        await inst.wait()
    assert [row[:2] for row in _indexed(state)] == [("first", "complete")]


async def test_the_ready_queue_assumption_holds_on_this_python() -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0)
    loop.call_soon(lambda: None)
    assert has_ready_callbacks(loop)
    for _ in range(3):
        await asyncio.sleep(0)
    assert not has_ready_callbacks(loop)
