"""The determinism guard: code changed under a sleeping instance is caught on replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator
from workflows_emulator.testing import NonDeterminismError, NonDeterminismWarning
from workflows_saga import WorkflowEntrypoint


def flow(*steps: str, config: dict[str, Any] | None = None, swallow: bool = False) -> type:
    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            for name in steps:
                if name == "nap":
                    await step.sleep("nap", "1 day")
                    continue
                try:
                    await step.do(name, lambda name=name: name, config=config or {})
                except Exception:
                    if not swallow:
                        raise
            return list(steps)

    return Flow


async def _parked(state: Path, cls: type) -> None:
    """An instance that ran ``cls`` up to its sleep, left there (as a deployed one would be)."""
    async with Emulator(state) as emu:
        inst = await emu.workflow(cls, name="flow").create(id="i")
        await inst.wait(until={"waiting"})


async def _replay(state: Path, cls: type, **options: Any) -> dict[str, Any]:
    async with Emulator(state, **options) as emu:
        inst = await emu.workflow(cls, name="flow").get("i")
        return await inst.wait()


async def test_the_same_code_replays_without_complaint(tmp_path: Path) -> None:
    await _parked(tmp_path, flow("a", "b", "nap", "c"))
    assert (await _replay(tmp_path, flow("a", "b", "nap", "c")))["status"] == "complete"


@pytest.mark.parametrize(("changed", "finding"), [
    (flow("a", "renamed", "nap", "c"),
     "at position 2 run() asked for step.do 'renamed' where the log has step.do 'b'"),
    (flow("b", "a", "nap", "c"),
     "at position 1 run() asked for step.do 'b' where the log has step.do 'a'"),
    (flow("a", "nap", "c"),
     "at position 2 run() asked for step.sleep 'nap' where the log has step.do 'b'"),
    (flow("a", "b", "nap", "c", config={"retries": {"limit": 1, "delay": "1 second"}}),
     "step.do 'a' now has the config"),
])
async def test_a_changed_step_sequence_is_named_with_both_sequences(
        tmp_path: Path, changed: type, finding: str) -> None:
    await _parked(tmp_path, flow("a", "b", "nap", "c"))
    with pytest.raises(NonDeterminismError) as caught:
        await _replay(tmp_path, changed)
    message = str(caught.value)
    assert finding in message
    assert "logged: step.do 'a', step.do 'b', step.sleep 'nap'" in message
    assert "asked:" in message and "re-key the steps silently" in message


async def test_a_removed_last_step_is_found_when_run_ends(tmp_path: Path) -> None:
    await _parked(tmp_path, flow("a", "b", "nap", "c"))
    with pytest.raises(NonDeterminismError, match=r"run\(\) ended without asking for "
                       r"step\.sleep 'nap'"):
        await _replay(tmp_path, flow("a", "b"))


async def test_code_that_swallows_the_error_is_still_stopped(tmp_path: Path) -> None:
    await _parked(tmp_path, flow("a", "b", "nap", "c"))
    with pytest.raises(NonDeterminismError, match=r"asked for step\.do 'x'"):
        await _replay(tmp_path, flow("x", "b", "nap", "c", swallow=True))
    # nothing was written: the old code still finds its log intact
    assert (await _replay(tmp_path, flow("a", "b", "nap", "c")))["status"] == "complete"


async def test_warn_mode_carries_on_as_cloudflare_would(tmp_path: Path) -> None:
    await _parked(tmp_path, flow("a", "b", "nap", "c"))
    with pytest.warns(NonDeterminismWarning, match=r"asked for step\.do 'renamed'"):
        status = await _replay(tmp_path, flow("a", "renamed", "nap", "c"), determinism="warn")
    assert status["status"] == "complete"  # the renamed step simply ran, as on Cloudflare


async def test_off_mode_says_nothing(tmp_path: Path) -> None:
    await _parked(tmp_path, flow("a", "b", "nap", "c"))
    status = await _replay(tmp_path, flow("a", "renamed", "nap", "c"), determinism="off")
    assert status["status"] == "complete"
