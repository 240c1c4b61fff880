"""The step API: decorator and call forms, implicit dependencies, ctx, rollback options."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from workflows_emulator import Emulator
from workflows_saga import (
    InvalidStepConfigError,
    NonRetryableError,
    RollbackContext,
    StepContext,
    StepError,
    WorkflowEntrypoint,
)


async def run_once(emu: Emulator, body: Any, params: Any = None) -> dict[str, Any]:
    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await body(event, step)

    wf = emu.workflow(Flow, name="flow")
    inst = await wf.create(params=params)
    return await inst.wait(timeout=10)


async def test_decorator_runs_only_when_awaited(emu: Emulator) -> None:
    ran: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        @step.do("a")
        async def a() -> int:
            ran.append("a")
            return 1

        for _ in range(3):  # unlike the call form, it has not started
            await asyncio.sleep(0)
        assert ran == []
        return await a()

    status = await run_once(emu, body)
    assert status["status"] == "complete" and status["output"] == 1 and ran == ["a"]


async def test_name_defaults_to_function_name_and_bare_decorator(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        @step.do
        async def fetch_user(ctx: StepContext) -> str:
            return ctx.name

        @step.do()
        async def greet(fetch_user: str) -> str:
            return f"hello {fetch_user}"

        return await greet()

    assert (await run_once(emu, body))["output"] == "hello fetch_user"


async def test_implicit_dependencies_ctx_and_memoisation(emu: Emulator) -> None:
    calls: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        @step.do()
        async def dep_1() -> str:
            calls.append("dep_1")
            return "one"

        @step.do()
        async def dep_2(dep_1: str) -> str:
            calls.append("dep_2")
            return dep_1 + "+two"

        @step.do(concurrent=True)
        async def final(dep_1: str, dep_2: str, ctx: dict[str, Any]) -> dict[str, Any]:
            return {"deps": [dep_1, dep_2], "step": ctx["step"], "attempt": ctx["attempt"]}

        return await final()

    out = (await run_once(emu, body))["output"]
    assert out == {"deps": ["one", "one+two"], "step": {"name": "final", "count": 1}, "attempt": 1}
    assert calls == ["dep_1", "dep_2"]  # dep_1 resolved once, then memoised


async def test_unknown_parameter_is_a_type_error(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        @step.do()
        async def needs(nothing_like_this: int) -> int:
            return 1

        try:
            await needs()
        except TypeError as exc:
            return str(exc)
        return "no error"

    assert (await run_once(emu, body))["output"] == "Received unexpected parameter nothing_like_this"


async def test_calling_the_same_step_twice_counts_two(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        @step.do("s")
        async def s(ctx: StepContext) -> int:
            return ctx.count

        return [await s(), await s()]

    assert (await run_once(emu, body))["output"] == [1, 2]


async def test_call_form_with_and_without_ctx(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        a = await step.do("a", lambda: "no ctx")
        b = await step.do("b", lambda ctx: ctx["step"]["name"])

        async def c(ctx: StepContext) -> int:
            return ctx.attempt

        return [a, b, await step.do("c", c)]

    assert (await run_once(emu, body))["output"] == ["no ctx", "b", 1]


async def test_rollback_attach_form_and_sync_handler(emu: Emulator) -> None:
    seen: list[Any] = []

    async def body(event: Any, step: Any) -> Any:
        @step.do("reserve-seat")
        async def reserve() -> dict[str, str]:
            return {"seat": "12A"}

        @reserve.rollback
        def release(rb: RollbackContext[dict[str, str]]) -> None:  # a sync handler
            seen.append((rb.output, rb.step_name, rb.ctx.name, rb.ctx.count, type(rb.error)))

        await reserve()
        raise RuntimeError("payment declined")

    status = await run_once(emu, body)
    assert status["status"] == "errored"
    assert status["error"] == {"name": "RuntimeError", "message": "payment declined"}
    assert seen == [({"seat": "12A"}, "reserve-seat-1", "reserve-seat", 1, StepError)]
    assert status["rollback"] == {"outcome": "complete", "error": None}


async def test_rollback_attach_with_config_and_twice_is_rejected(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        @step.do("x")
        async def x() -> int:
            return 1

        @x.rollback(config={"retries": {"limit": 0, "delay": 0}})
        async def undo(rb: Any) -> None:
            pass

        try:
            x.rollback(undo)
        except InvalidStepConfigError as exc:
            return str(exc)
        return "accepted"

    assert (await run_once(emu, body))["output"] == 'Step "x" already has a rollback handler'


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rollback": "not callable"}, 'Rollback for "s" must be a function'),
        ({"rollback": lambda rb: None, "rollback_config": {"sensitive": "output"}},
         'Rollback config for "s" is in a invalid format'),
        ({"config": {"retries": {"limit": -1, "delay": 0}}}, 'Step config for "s" is in a invalid format'),
        ({"rollback_config": {"timeout": 1000}}, 'Rollback for "s" must be a function'),
    ],
)
async def test_bad_options_are_rejected_before_the_step_runs(
    emu: Emulator, kwargs: dict[str, Any], message: str
) -> None:
    ran: list[int] = []

    async def body(event: Any, step: Any) -> Any:
        try:
            await step.do("s", lambda: ran.append(1), **kwargs)
        except InvalidStepConfigError as exc:
            return str(exc)
        return "accepted"

    out = (await run_once(emu, body))["output"]
    assert out.startswith(message) and ran == []


async def test_step_name_validation(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        errors = []
        for bad in ("x" * 257, "tab\tname"):
            try:
                await step.do(bad, lambda: 1)
            except InvalidStepConfigError as exc:
                errors.append(str(exc))
        await step.do("x" * 256, lambda: 1)
        return errors

    out = (await run_once(emu, body))["output"]
    assert len(out) == 2 and all("exceeds max length (256 chars)" in e for e in out)


async def test_errors_crossing_step_do_keep_type_only_for_three_kinds(emu: Emulator) -> None:
    class Custom(Exception):
        pass

    async def body(event: Any, step: Any) -> Any:
        got = {}
        for name, exc in [("t", TypeError("t!")), ("v", ValueError("v!")),
                          ("n", NonRetryableError("n!")), ("k", KeyError("k")),
                          ("c", Custom("c!"))]:
            def boom(ctx: Any, e: BaseException = exc) -> None:
                raise e
            try:
                await step.do(name, boom, config={"retries": {"limit": 0, "delay": 0}})
            except Exception as caught:
                got[name] = [type(caught).__name__, str(caught)]
        return got

    out = (await run_once(emu, body))["output"]
    assert out == {
        "t": ["TypeError", "t!"], "v": ["ValueError", "v!"],
        "n": ["NonRetryableError", "n!"], "k": ["StepError", "KeyError: 'k'"],
        "c": ["StepError", "Custom: c!"],
    }


async def test_outputs_round_trip_through_json(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        value = await step.do("s", lambda: {"n": 1, "nested": [1, 2]})
        return value

    assert (await run_once(emu, body))["output"] == {"n": 1, "nested": [1, 2]}
