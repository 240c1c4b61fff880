"""JS-shaped calls to the step API are refused with the Python form in the message, and the
form the message gives runs; every valid Python shape is left alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from workflows_emulator import Emulator
from workflows_saga import InvalidStepConfigError, RollbackContext, WorkflowEntrypoint

Body = Callable[[Any, Any], Awaitable[Any]]
RETRIES = {"retries": {"limit": 2, "delay": "1 second"}}


async def run_once(emu: Emulator, body: Body, name: str = "flow") -> dict[str, Any]:
    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await body(event, step)

    inst = await emu.workflow(Flow, name=name).create()
    return await inst.wait(timeout=10)


async def charge() -> str:
    return "ch_1"


undone: list[Any] = []


def refund(rb: RollbackContext[str]) -> None:
    undone.append(rb.output)


async def refused(emu: Emulator, call: Callable[[Any], Awaitable[Any]]) -> tuple[str, str]:
    """What ``call(step)`` raised inside a workflow: ``(class name, message)``."""

    async def body(event: Any, step: Any) -> Any:
        try:
            await call(step)
        except Exception as exc:
            return [type(exc).__name__, str(exc)]
        return ["accepted", ""]

    name, message = (await run_once(emu, body))["output"]
    return name, message


JS_CALLS: list[tuple[str, Callable[[Any], Awaitable[Any]], str, str]] = [
    ("config before the callback",
     lambda step: step.do("charge", RETRIES, charge),
     "TypeError",
     'step.do("charge", {...}, charge) is JS\'s argument order (name, config, callback, '
     "options). In Python the callback comes second and the rest are keywords: "
     'await step.do("charge", charge, config={...})'),
    ("config, callback and rollback options",
     lambda step: step.do("charge", RETRIES, charge,
                          {"rollback": refund, "rollbackConfig": RETRIES}),
     "TypeError",
     'step.do("charge", {...}, charge, {...}) is JS\'s argument order (name, config, callback, '
     "options). In Python the callback comes second and the rest are keywords: "
     'await step.do("charge", charge, config={...}, rollback=refund, rollback_config={...})'),
    ("rollback options object after the callback",
     lambda step: step.do("charge", charge, {"rollback": refund}),
     "TypeError",
     'step.do("charge", charge, {...}) passes JS\'s rollback options object. In Python the '
     'handler and its config are keywords: await step.do("charge", charge, rollback=refund)'),
    ("config after the callback",
     lambda step: step.do("charge", charge, RETRIES),
     "TypeError",
     'step.do("charge", charge, {...}): the config is a keyword in Python: '
     'await step.do("charge", charge, config={...})'),
    ("rollback options object as rollback=",
     lambda step: step.do("charge", charge, rollback={"rollback": refund, "rollbackConfig": {}}),
     "InvalidStepConfigError",
     'Rollback for "charge" must be a function, not JS\'s options object: in Python the handler '
     "and its config are two keywords, rollback=refund, rollback_config={...}"),
    ("camelCase rollbackConfig=",
     lambda step: step.do("charge", charge, rollback=refund, rollbackConfig=RETRIES),
     "TypeError",
     "step.do() got unexpected keyword argument(s) 'rollbackConfig' (rollbackConfig= is "
     "rollback_config); it takes concurrent=, config=, rollback= and rollback_config="),
    ("config where the callback goes",
     lambda step: step.do("charge", RETRIES),
     "InvalidStepConfigError",
     'Step "charge" requires a callback function, got a config in its place. The config is a '
     'keyword in Python: await step.do("charge", callback, config={...}), or decorate: '
     '@step.do("charge", config={...})'),
    ("awaiting the decorator form",
     lambda step: step.do("charge", config=RETRIES),
     "TypeError",
     'step.do("charge", ...) was given no callback, so it is the decorator form and cannot be '
     'awaited: pass the callback, await step.do("charge", callback, config={...}), or decorate '
     'a function with @step.do("charge", ...) and await that function'),
    ("wait_for_event with JS's options object",
     lambda step: step.wait_for_event("approval", {"type": "approved", "timeout": "1 hour"}),
     "TypeError",
     "step.wait_for_event() got JS's options object {type, timeout}. In Python the event type "
     "is the second positional argument and the timeout a keyword: "
     'await step.wait_for_event("approval", "approved", timeout="1 hour")'),
    ("wait_for_event with type=",
     lambda step: step.wait_for_event("approval", type="approved", timeout="1 hour"),
     "TypeError",
     "step.wait_for_event() got keyword argument(s) 'type'. In Python the event type is the "
     "second positional argument and the timeout a keyword: "
     'await step.wait_for_event("approval", "approved", timeout="1 hour")'),
    ("camelCase waitForEvent",
     lambda step: step.waitForEvent("approval", {"type": "approved"}),
     "AttributeError",
     "'WorkflowStep' object has no attribute 'waitForEvent': in Python it is "
     'step.wait_for_event(name, event_type, timeout="24 hours")'),
    ("camelCase sleepUntil",
     lambda step: step.sleepUntil("until", 0),
     "AttributeError",
     "'WorkflowStep' object has no attribute 'sleepUntil': in Python it is "
     "step.sleep_until(name, timestamp)"),
    ("the closed proposal's with_rollback",
     lambda step: step.with_rollback("charge"),
     "AttributeError",
     "'WorkflowStep' object has no attribute 'with_rollback': in Python it is "
     "step.do(name, callback, rollback=handler)"),
]


@pytest.mark.parametrize(("label", "call", "kind", "message"), JS_CALLS,
                         ids=[c[0] for c in JS_CALLS])
async def test_a_js_shaped_call_says_the_python_form(
        emu: Emulator, label: str, call: Callable[[Any], Awaitable[Any]], kind: str,
        message: str) -> None:
    assert await refused(emu, call) == (kind, message)


async def test_nothing_runs_when_the_call_is_refused(emu: Emulator) -> None:
    ran: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        with pytest.raises(TypeError):
            step.do("charge", RETRIES, lambda: ran.append("charge"))
        with pytest.raises(TypeError):
            step.do("charge", lambda: ran.append("charge"), {"rollback": refund})
        return await step.do("after", lambda ctx: ctx.count)

    status = await run_once(emu, body)
    # the refused calls took no step count: the next step is the first of its name
    assert (status["status"], status["output"], ran) == ("complete", 1, [])


async def test_the_forms_the_messages_give_run(emu: Emulator) -> None:
    undone.clear()

    async def body(event: Any, step: Any) -> Any:
        one = await step.do("charge", charge, config=RETRIES, rollback=refund,
                            rollback_config=RETRIES)

        @step.do("charge", config=RETRIES, rollback=refund)
        async def again() -> str:
            return "ch_2"

        two = await again()
        waited = step.wait_for_event("approval", "approved", timeout="1 hour")
        return [one, two, (await waited)["payload"]]

    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await body(event, step)

    inst = await emu.workflow(Flow, name="forms").create()
    await inst.wait_for_event_wait("approved")
    await inst.send_event("approved", "yes")
    assert (await inst.wait(timeout=10))["output"] == ["ch_1", "ch_2", "yes"]
    assert undone == []


async def test_the_python_shapes_are_all_still_accepted(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        @step.do
        async def bare() -> str:
            return "bare"

        @step.do()
        async def empty(bare: str) -> str:
            return bare + "+empty"

        @step.do("named", config=RETRIES)
        async def named(ctx: Any) -> int:
            return int(ctx.attempt)

        @step.do(name="keyword", concurrent=True)
        async def keyword() -> str:
            return "kw"

        called = await step.do("called", lambda: "call")
        by_keyword = await step.do(name="by keyword", callback=lambda ctx: ctx.name)
        return [await empty(), await named(), await keyword(), called, by_keyword]

    status = await run_once(emu, body)
    assert status["output"] == ["bare+empty", 1, "kw", "call", "by keyword"]


async def test_a_non_js_bad_attribute_keeps_python_s_message(emu: Emulator) -> None:
    assert await refused(emu, lambda step: step.do_later("x")) == (
        "AttributeError", "'WorkflowStep' object has no attribute 'do_later'")


async def test_the_rollback_options_check_keeps_cloudflare_s_message_first(emu: Emulator) -> None:
    name, message = await refused(emu, lambda step: step.do("s", charge, rollback={"x": 1}))
    assert (name, message) == ("InvalidStepConfigError", 'Rollback for "s" must be a function')
    assert issubclass(InvalidStepConfigError, ValueError)


async def test_other_extra_positional_arguments_get_the_general_form(emu: Emulator) -> None:
    assert await refused(emu, lambda step: step.do("charge", charge, refund)) == (
        "TypeError",
        'step.do() takes a name and a callback by position, and the rest as keywords, got '
        'step.do("charge", charge, refund): await step.do(name, callback, config={...}, '
        "rollback=handler, rollback_config={...})")
