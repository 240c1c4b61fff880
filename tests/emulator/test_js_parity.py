"""JS parity on the engine: call-form steps start at call time, so ``asyncio.gather`` and
``asyncio.wait`` over them behave as ``Promise.all`` and ``Promise.race``."""

from __future__ import annotations

import asyncio
from typing import Any

from emulator_support import labels, overlapping_pair
from workflows_emulator import Emulator
from workflows_saga import NonRetryableError, RollbackContext, WorkflowEntrypoint


async def run(emu: Emulator, body: Any) -> tuple[dict[str, Any], Any]:
    class Saga(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await body(event, step)

    inst = await emu.workflow(Saga, name="saga").create(id="i-1")
    return await inst.wait(timeout=10), inst


def steps(inst: Any, event: str) -> list[str | None]:
    return [step for _, step in labels(inst, event)]


async def test_gather_is_promise_all_and_rolls_back_in_call_order(emu: Emulator) -> None:
    undone: list[tuple[str, Any]] = []
    a, b = overlapping_pair()

    def undo(rb: RollbackContext[Any]) -> None:
        undone.append((rb.step_name, rb.output))

    async def body(event: Any, step: Any) -> Any:
        out = await asyncio.gather(step.do("a", a, rollback=undo), step.do("b", b, rollback=undo))
        await step.do("c", lambda: None, rollback=lambda: undone.append(("c", None)))
        raise NonRetryableError(f"after {out}")

    status, inst = await run(emu, body)
    assert status["status"] == "errored"
    assert status["error"] == {"name": "NonRetryableError", "message": "after ['a', 'b']"}
    assert steps(inst, "STEP_START") == ["a-1", "b-1", "c-1"]
    assert undone == [("c", None), ("b-1", "b"), ("a-1", "a")]


async def test_wait_first_completed_is_promise_race(emu: Emulator) -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def body(event: Any, step: Any) -> Any:
        racers = {step.do("slow", slow), step.do("fast", lambda: "fast")}
        done, pending = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        winner = done.pop().result()
        release.set()
        return [winner, await pending.pop()]

    status, inst = await run(emu, body)
    assert status["status"] == "complete" and status["output"] == ["fast", "slow"]
    assert steps(inst, "STEP_START") == ["slow-1", "fast-1"]
    assert steps(inst, "STEP_SUCCESS") == ["fast-1", "slow-1"]


async def test_a_started_step_nobody_awaits_still_runs(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        first = step.do("first", lambda: 1)
        await step.do("second", lambda: 2)
        return await first

    status, inst = await run(emu, body)
    assert status["output"] == 1
    assert steps(inst, "STEP_START") == ["first-1", "second-1"]


async def test_a_named_non_retryable_error_is_recorded_as_non_retryable_error(
        emu: Emulator) -> None:
    # workers-sdk: PreservedNonRetryableError (name "NonRetryableError", the message kept);
    # the Python SDK's bridge keeps only the class name and the message too.
    def decline() -> None:
        raise NonRetryableError("card declined", "PaymentError")

    async def body(event: Any, step: Any) -> Any:
        await step.do("pay", decline, config={"retries": {"limit": 3, "delay": 0}})

    status, inst = await run(emu, body)
    assert status["error"] == {"name": "NonRetryableError", "message": "card declined"}
    assert steps(inst, "ATTEMPT_START") == ["pay-1"]
    failure = next(e for e in inst.events() if e["event"] == "STEP_FAILURE")
    assert failure["data"]["error"] == status["error"]
