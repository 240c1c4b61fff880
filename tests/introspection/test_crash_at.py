"""``emu.crash_at(event, nth)``: the emulator dies right after that commit, in-process, and a
new emulator on the same state recovers exactly what a restart after ``kill -9`` would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator, EmulatorError
from workflows_saga import NonRetryableError, WorkflowEntrypoint

effects: list[str] = []


class Saga(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        for name in ("reserve", "charge", "ship"):
            async def undo(ctx: Any, name: str = name) -> None:
                effects.append(f"undo {name}")

            await step.do(name, lambda name=name: effects.append(name) or name, rollback=undo)
        if event["payload"].get("fail"):
            raise NonRetryableError("refused")
        return "done"


@pytest.fixture(autouse=True)
def _clear() -> None:
    effects.clear()


async def test_a_crash_after_the_2nd_step_success_resumes_from_the_3rd(tmp_path: Path) -> None:
    emu = Emulator(tmp_path)
    wf = emu.workflow(Saga, name="saga")
    crash = emu.crash_at("STEP_SUCCESS", nth=2)
    inst = await wf.create(id="s", params={})
    await crash.wait(inst)
    assert crash.crashed and crash.where == "after STEP_SUCCESS #2 of step charge-1 of instance s"
    # The third step may have started in memory; nothing of it reached the disk.
    async with Emulator(tmp_path) as again:
        restarted = await again.workflow(Saga, name="saga").get("s")
        logged = [(e["event"], e["step"]) for e in restarted.events()]
        assert logged[-1] == ("STEP_SUCCESS", "charge-1")
        effects.clear()
        assert (await restarted.wait())["output"] == "done"
        assert effects == ["ship"]  # reserve and charge were not run again


async def test_a_crash_during_the_2nd_rollback_handler_runs_it_again(tmp_path: Path) -> None:
    emu = Emulator(tmp_path)
    wf = emu.workflow(Saga, name="saga")
    crash = emu.crash_at("ROLLBACK_ATTEMPT_START", nth=2)
    inst = await wf.create(id="s", params={"fail": True})
    await crash.wait(inst)
    assert effects[-2:] == ["undo ship", "undo charge"]  # ran in memory, never committed
    async with Emulator(tmp_path) as again:
        restarted = await again.workflow(Saga, name="saga").get("s")
        effects.clear()
        status = await restarted.wait()
        assert status["rollback"] == {"outcome": "complete", "error": None}
        # the handler cut off by the crash runs again (at-least-once), then the rest
        assert effects == ["undo charge", "undo reserve"]


async def test_an_instance_that_ends_before_the_crash_point_says_so(tmp_path: Path) -> None:
    emu = Emulator(tmp_path)
    wf = emu.workflow(Saga, name="saga")
    crash = emu.crash_at("STEP_SUCCESS", nth=9)
    inst = await wf.create(id="s", params={})
    with pytest.raises(EmulatorError, match=r"ended without reaching it \(3 seen\)"):
        await crash.wait(inst)


def test_unknown_events_are_refused(tmp_path: Path) -> None:
    emu = Emulator(tmp_path)
    with pytest.raises(EmulatorError, match="unknown log event 'STEP_DONE'"):
        emu.crash_at("STEP_DONE")
    emu.close_idle()
