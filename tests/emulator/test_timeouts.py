"""Attempt timeouts count real time under the virtual clock, and a callback past its timeout
runs on (Cloudflare's engine races it against a timer and never cancels it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from workflows_emulator import Emulator
from workflows_saga import RollbackContext, WorkflowEntrypoint

NO_RETRY = {"limit": 0, "delay": 0}


async def test_a_slow_step_times_out_on_real_time_and_runs_on(emu: Emulator) -> None:
    ran: list[str] = []

    async def slow() -> str:
        await asyncio.sleep(0.4)
        ran.append("finished anyway")
        return "late"

    class Slow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await step.do("slow", slow, config={"timeout": 100, "retries": NO_RETRY})

    inst = await emu.workflow(Slow, name="slow").create()
    started = time.perf_counter()
    status = await inst.wait(timeout=10)
    assert time.perf_counter() - started < 0.35  # did not wait for the late value
    assert status["status"] == "errored"
    assert status["error"] == {"name": "WorkflowTimeoutError",
                               "message": "Execution timed out after 100ms"}
    assert ran == []
    await asyncio.sleep(0.5)
    assert ran == ["finished anyway"]  # never cancelled; its value was ignored


async def test_a_retry_after_a_timeout_can_succeed(emu: Emulator) -> None:
    async def first_slow(ctx: Any) -> int:
        if ctx["attempt"] == 1:
            await asyncio.sleep(0.4)
        return ctx["attempt"]

    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await step.do("s", first_slow,
                                 config={"timeout": 100, "retries": {"limit": 1, "delay": 0}})

    inst = await emu.workflow(Flow, name="flow").create()
    status = await inst.wait(timeout=10)
    assert status["output"] == 2
    failures = [e for e in inst.events() if e["event"] == "ATTEMPT_FAILURE"]
    assert [f["data"]["error"]["name"] for f in failures] == ["WorkflowTimeoutError"]


async def test_a_handler_past_its_timeout_halts_the_chain(emu: Emulator) -> None:
    undone: list[str] = []

    async def undo_first(rb: RollbackContext[Any]) -> None:
        undone.append(rb.step_name)

    async def undo_slow(rb: RollbackContext[Any]) -> None:
        await asyncio.sleep(0.4)

    def fail() -> None:
        raise ValueError("boom")

    class Saga(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            await step.do("first", lambda: 1, rollback=undo_first)
            await step.do("second", lambda: 2, rollback=undo_slow,
                          rollback_config={"timeout": 100, "retries": NO_RETRY})
            await step.do("third", fail, config={"retries": NO_RETRY})

    inst = await emu.workflow(Saga, name="saga").create()
    status = await inst.wait(timeout=10)
    assert status["rollback"] == {"outcome": "failed", "error": {
        "name": "WorkflowTimeoutError", "message": "Execution timed out after 100ms"}}
    assert undone == []  # the chain stopped at second's handler
