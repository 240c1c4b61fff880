"""Every SQLite connection the emulator opens is closed on every path, never left to the
garbage collector (Python 3.13 reports those as ResourceWarning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator_support import open_files_under
from workflows_emulator import Emulator, InstanceNotFoundError, StateDirectoryBusy
from workflows_saga import WorkflowEntrypoint

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


class Sleeper(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1)
        await step.sleep("nap", "1 day")
        return "done"


async def test_close_releases_every_file_of_every_instance(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Emulator(state) as emu:
        wf = emu.workflow(Sleeper, name="sleeper")
        done = await wf.create(id="done")
        await done.wait()
        parked = await wf.create(id="parked")
        await parked.wait(until={"waiting"})
        await parked.pause()
        assert open_files_under(state)  # in use while open
    assert open_files_under(state) == []


async def test_delete_releases_the_instance_s_files_at_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Emulator(state) as emu:
        inst = await emu.workflow(Sleeper, name="sleeper").create(id="gone")
        await inst.wait(until={"waiting"})
        await inst.delete()
        assert [f for f in open_files_under(state) if "gone" in f] == []
        with pytest.raises(InstanceNotFoundError):
            await inst.status()
    assert open_files_under(state) == []


def test_a_refused_state_directory_leaves_nothing_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Emulator(state)
    held = open_files_under(state)
    with pytest.raises(StateDirectoryBusy, match="already open in this process"):
        Emulator(state)
    assert open_files_under(state) == held  # the refused one opened nothing, or closed it
    first.close_idle()
    assert open_files_under(state) == []


def test_an_idle_emulator_closes_without_an_event_loop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    emu = Emulator(state)
    emu.workflow(Sleeper, name="sleeper")
    emu.close_idle()
    emu.close_idle()  # twice is harmless
    assert open_files_under(state) == []
