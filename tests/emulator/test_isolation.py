"""What one step is given is its own: changing it leaks into no other step or instance."""

from __future__ import annotations

from typing import Any

from workflows_emulator import Emulator
from workflows_saga import RollbackContext, WorkflowEntrypoint


async def test_changing_ctx_config_leaks_nowhere(emu: Emulator) -> None:
    seen: list[int] = []

    async def meddle(ctx: Any) -> int:
        seen.append(ctx["config"]["retries"]["limit"])
        ctx["config"]["retries"]["limit"] = 99
        ctx["config"]["timeout"] = "1 second"
        return 1

    async def undo(rb: RollbackContext[Any]) -> None:
        seen.append(rb.ctx["config"]["retries"]["limit"])
        rb.ctx["config"]["retries"]["limit"] = 42

    class Meddler(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            await step.do("a", meddle, rollback=undo)
            await step.do("b", meddle, rollback=undo)
            raise ValueError("roll back")

    wf = emu.workflow(Meddler, name="meddler")
    for _ in range(2):
        await (await wf.create()).wait()
    assert seen == [5] * 8  # the default limit, every time, forward and rollback

