"""Every rollback rule, through the public API."""

from __future__ import annotations

import asyncio
from typing import Any

from workflows_emulator import Emulator
from workflows_saga import NonRetryableError, RollbackContext, WorkflowEntrypoint


def make(body: Any) -> type:
    class Saga(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await body(event, step)

    return Saga


async def run(emu: Emulator, body: Any) -> tuple[dict[str, Any], Any]:
    wf = emu.workflow(make(body), name="saga")
    inst = await wf.create(id="i-1")
    return await inst.wait(timeout=10), inst


def recorder(log: list[Any], label: str) -> Any:
    async def handler(rb: RollbackContext[Any]) -> None:
        log.append((label, rb.output))

    return handler


async def test_reverse_start_order_and_failed_step_gets_none(emu: Emulator) -> None:
    log: list[Any] = []

    async def body(event: Any, step: Any) -> Any:
        for name in ("a", "b", "c"):
            await step.do(name, lambda n=name: f"{n}-out", rollback=recorder(log, name))
        await step.do("d", lambda: 1)  # no handler: skipped
        await step.do("boom", _raise(ValueError("nope")), config={"retries": {"limit": 0, "delay": 0}},
                      rollback=recorder(log, "boom"))

    status, inst = await run(emu, body)
    assert log == [("boom", None), ("c", "c-out"), ("b", "b-out"), ("a", "a-out")]
    assert status == {"status": "errored", "error": {"name": "ValueError", "message": "nope"},
                      "output": None, "rollback": {"outcome": "complete", "error": None}}
    names = [e["event"] for e in inst.events()]
    assert names.index("ROLLBACK_START") < names.index("WORKFLOW_FAILURE")
    start = next(e for e in inst.events() if e["event"] == "ROLLBACK_START")
    assert start["data"]["totalSteps"] == 4


def _raise(exc: BaseException) -> Any:
    def fn() -> None:
        raise exc

    return fn


async def test_parallel_steps_roll_back_in_reverse_start_order_not_completion(
    emu: Emulator,
) -> None:
    log: list[Any] = []
    finished: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        gate = asyncio.Event()

        async def slow() -> str:
            await gate.wait()  # started first, finishes last
            finished.append("slow")
            return "slow"

        async def fast() -> str:
            finished.append("fast")
            gate.set()
            return "fast"

        await asyncio.gather(
            step.do("slow", slow, rollback=recorder(log, "slow")),
            step.do("fast", fast, rollback=recorder(log, "fast")),
        )
        raise RuntimeError("after both")

    status, _ = await run(emu, body)
    assert finished == ["fast", "slow"]
    assert log == [("fast", "fast"), ("slow", "slow")]
    assert status["rollback"]["outcome"] == "complete"


async def test_caught_error_never_triggers_rollback(emu: Emulator) -> None:
    log: list[Any] = []

    async def body(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=recorder(log, "a"))
        try:
            await step.do("b", _raise(ValueError("x")), config={"retries": {"limit": 0, "delay": 0}},
                          rollback=recorder(log, "b"))
        except ValueError:
            pass
        return "recovered"

    status, _ = await run(emu, body)
    assert status == {"status": "complete", "error": None, "output": "recovered", "rollback": None}
    assert log == []


async def test_plain_raise_after_all_steps_succeeded_rolls_back(emu: Emulator) -> None:
    log: list[Any] = []

    async def body(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=recorder(log, "a"))
        raise KeyError("late")

    status, _ = await run(emu, body)
    assert log == [("a", 1)]
    assert status["error"] == {"name": "KeyError", "message": "'late'"}


async def test_success_runs_no_rollback(emu: Emulator) -> None:
    log: list[Any] = []

    async def body(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=recorder(log, "a"))
        return "ok"

    status, inst = await run(emu, body)
    assert status["rollback"] is None and log == []
    assert not [e for e in inst.events() if e["event"].startswith("ROLLBACK")]


async def test_handler_uses_rollback_config_not_forward_config(emu: Emulator) -> None:
    attempts: list[int] = []

    async def handler(rb: RollbackContext[Any]) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise RuntimeError("refund service down")

    async def body(event: Any, step: Any) -> Any:
        await step.do("pay", lambda: "p", config={"retries": {"limit": 0, "delay": 0}}, rollback=handler,
                      rollback_config={"retries": {"limit": 2, "delay": "1 second",
                                                   "backoff": "constant"}})
        raise RuntimeError("fail")

    status, inst = await run(emu, body)
    assert attempts == [1, 2, 3]
    assert status["rollback"] == {"outcome": "complete", "error": None}
    failures = [e for e in inst.events() if e["event"] == "ROLLBACK_ATTEMPT_FAILURE"]
    assert [f["data"]["retryDelayMs"] for f in failures] == [1000, 1000]


async def test_handler_without_rollback_config_uses_the_defaults(emu: Emulator) -> None:
    attempts: list[Any] = []

    async def handler(rb: RollbackContext[Any]) -> None:
        attempts.append(rb.ctx.config["retries"]["limit"])
        raise RuntimeError("always")

    async def body(event: Any, step: Any) -> Any:
        await step.do("pay", lambda: "p", config={"retries": {"limit": 0, "delay": 0}}, rollback=handler)
        raise RuntimeError("fail")

    status, inst = await run(emu, body)
    # default: 5 retries, so 6 attempts, exponential from 10 s; ctx is the forward step's
    assert attempts == [0] * 6
    delays = [e["data"]["retryDelayMs"] for e in inst.events()
              if e["event"] == "ROLLBACK_ATTEMPT_FAILURE" and "retryDelayMs" in e["data"]]
    assert delays == [10_000, 20_000, 40_000, 80_000, 160_000]
    assert status["rollback"] == {"outcome": "failed",
                                  "error": {"name": "RuntimeError", "message": "always"}}


async def test_non_retryable_in_handler_stops_retries_and_halts_chain(emu: Emulator) -> None:
    log: list[Any] = []
    attempts = 0

    async def fatal(rb: RollbackContext[Any]) -> None:
        nonlocal attempts
        attempts += 1
        raise NonRetryableError("cannot refund")

    async def body(event: Any, step: Any) -> Any:
        await step.do("first", lambda: 1, rollback=recorder(log, "first"))
        await step.do("second", lambda: 2, rollback=fatal)
        await step.do("third", lambda: 3, rollback=recorder(log, "third"))
        raise RuntimeError("fail")

    status, _ = await run(emu, body)
    assert attempts == 1
    assert log == [("third", 3)]  # "first" never rolled back: the chain halted
    assert status["status"] == "errored"
    assert status["error"] == {"name": "RuntimeError", "message": "fail"}
    assert status["rollback"] == {"outcome": "failed",
                                  "error": {"name": "NonRetryableError",
                                            "message": "cannot refund"}}


async def test_handler_context_fields(emu: Emulator) -> None:
    seen: list[Any] = []

    async def handler(rb: RollbackContext[Any]) -> None:
        seen.append({"output": rb.output, "error": [type(rb.error).__name__, str(rb.error)],
                     "step_name": rb.step_name, "ctx": dict(rb.ctx)})

    async def body(event: Any, step: Any) -> Any:
        await step.do("charge", lambda: {"id": "ch_1"}, rollback=handler,
                      config={"retries": {"limit": 1, "delay": 5}})
        await step.do("charge", lambda: {"id": "ch_2"}, rollback=handler)
        raise ValueError("card expired")

    await run(emu, body)
    assert [s["output"] for s in seen] == [{"id": "ch_2"}, {"id": "ch_1"}]
    assert [s["step_name"] for s in seen] == ["charge-2", "charge-1"]
    assert seen[0]["error"] == ["ValueError", "card expired"]
    assert seen[1]["ctx"] == {
        "step": {"name": "charge", "count": 1}, "attempt": 1,
        "config": {"retries": {"limit": 1, "delay": 5, "backoff": "exponential"},
                   "timeout": "10 minutes"},
    }


async def test_in_flight_parallel_step_is_eligible_with_none(emu: Emulator) -> None:
    log: list[Any] = []

    async def body(event: Any, step: Any) -> Any:
        async def hangs() -> str:
            await asyncio.Event().wait()
            return "never"

        async def fails() -> None:
            await asyncio.sleep(0)
            raise NonRetryableError("broken")

        await asyncio.gather(
            step.do("hangs", hangs, rollback=recorder(log, "hangs")),
            step.do("fails", fails, rollback=recorder(log, "fails")),
        )

    status, _ = await run(emu, body)
    assert log == [("fails", None), ("hangs", None)]
    assert status["error"] == {"name": "NonRetryableError", "message": "broken"}


async def test_rollback_status_stays_running_during_rollback(emu: Emulator) -> None:
    seen: list[str] = []
    inst_box: list[Any] = []

    async def handler(rb: RollbackContext[Any]) -> None:
        seen.append((await inst_box[0].status())["status"])

    async def body(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=handler)
        raise RuntimeError("x")

    wf = emu.workflow(make(body), name="saga")
    inst = await wf.create(id="i-1")
    inst_box.append(inst)
    await inst.wait(timeout=10)
    assert seen == ["running"]
