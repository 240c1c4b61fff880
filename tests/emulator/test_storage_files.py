"""State files: schema versions, the index's one owner, and the quiescence assumption."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from workflows_emulator import Emulator, EmulatorError
from workflows_emulator.durable_object import DurableObjectStorage
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


async def test_an_older_state_directory_is_refused_with_what_to_do(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Emulator(state):
        pass
    conn = sqlite3.connect(state / "index.sqlite")
    conn.execute("PRAGMA user_version=0")  # as the emulator before versioned files wrote it
    conn.close()
    with pytest.raises(EmulatorError, match=r"schema version 0.*reads version 1.*new state dir"):
        Emulator(state)


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


async def test_the_ready_queue_assumption_holds_on_this_python() -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0)
    loop.call_soon(lambda: None)
    assert has_ready_callbacks(loop)
    for _ in range(3):
        await asyncio.sleep(0)
    assert not has_ready_callbacks(loop)
