"""Finished instances' statuses kept after their engine goes: exact, datetimes included."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflows_emulator import Emulator
from workflows_emulator.instance_catalog import FINISHED_KEPT
from workflows_saga import WorkflowEntrypoint


class Dated(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        return {"at": datetime(2024, 1, 1, 12, 30), "n": event["payload"]["n"]}


async def test_statuses_of_let_go_instances_come_back_exactly() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Dated, name="dated")
        count = FINISHED_KEPT + 6  # the oldest engines are let go: their status is kept
        for n in range(count):
            inst = await wf.create(id=f"i{n}", params={"n": n})
            assert (await inst.wait())["status"] == "complete"
        for n in range(count):
            status = await (await wf.get(f"i{n}")).status()
            assert status["output"] == {"at": datetime(2024, 1, 1, 12, 30), "n": n}
