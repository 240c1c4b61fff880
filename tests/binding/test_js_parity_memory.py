"""JS parity for people porting (issue 9, 2.l) over `MemoryBackend`: no engine needed.

The call form starts at call time; handlers take zero or one argument; every error a step
or handler sees has ``.name``/``.message``; ``NonRetryableError(message, name)``; a handler
attached after its step ran is refused.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from emulator_support import overlapping_pair
from workflows_saga import (
    InvalidStepConfigError,
    NonRetryableError,
    RollbackContext,
    StepError,
    WorkflowEntrypoint,
)
from workflows_saga._pyodide import plain_non_retryable
from workflows_saga.backend import ErrorRecord, error_from_record, record_error
from workflows_saga.testing import MemoryBackend

NO_RETRIES = {"retries": {"limit": 0, "delay": 0}}


def flow(body: Any) -> type[WorkflowEntrypoint]:
    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await body(event, step)

    return Flow


# -- 1. the call form starts the step at call time -------------------------------------------


async def test_call_form_starts_at_call_time_and_may_be_awaited_twice() -> None:
    ran: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        pending = step.do("a", lambda: ran.append("a") or 1)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert ran == ["a"]  # started although nobody awaited it yet
        return [await pending, await pending]

    backend = MemoryBackend()
    assert await backend.run(flow(body)) == [1, 1]
    assert backend.attempts == [("a-1", 1)]


async def test_gather_over_call_form_steps_is_promise_all_in_call_order() -> None:
    a, b = overlapping_pair()

    async def body(event: Any, step: Any) -> Any:
        first, second = step.do("x", a, rollback=lambda: undone.append("x-1")), \
            step.do("x", b, rollback=lambda: undone.append("x-2"))
        out = await asyncio.gather(first, second)
        raise ValueError(f"fail after {out}")

    undone: list[str] = []
    backend = MemoryBackend()
    with pytest.raises(ValueError, match=r"fail after \['a', 'b'\]"):
        await asyncio.wait_for(backend.run(flow(body), rollback=True), 5)
    assert [c.name for c in backend.calls] == ["x", "x"]
    assert undone == ["x-2", "x-1"]  # newest started first: call order is start order


async def test_asyncio_wait_first_completed_is_promise_race() -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def body(event: Any, step: Any) -> Any:
        slow_step, fast_step = step.do("slow", slow), step.do("fast", lambda: "fast")
        done, pending = await asyncio.wait({slow_step, fast_step},
                                           return_when=asyncio.FIRST_COMPLETED)
        winner = done.pop().result()
        release.set()
        return [winner, await pending.pop()]

    assert await asyncio.wait_for(MemoryBackend().run(flow(body)), 5) == ["fast", "slow"]


async def test_a_failure_nobody_awaits_is_not_reported_as_never_retrieved() -> None:
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def body(event: Any, step: Any) -> Any:
        step.do("fire-and-forget", _raise(ValueError("lost")), config=NO_RETRIES)
        await asyncio.sleep(0.01)
        return "done"

    try:
        backend = MemoryBackend()
        assert await backend.run(flow(body)) == "done"
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []
    assert backend.attempts == [("fire-and-forget-1", 1)]  # it ran and failed, once


# -- 2. rollback handlers take zero or one argument ------------------------------------------


async def test_handlers_of_zero_or_one_argument_sync_or_async() -> None:
    seen: list[Any] = []

    def zero_sync() -> None:
        seen.append("zero_sync")

    async def zero_async() -> None:
        seen.append("zero_async")

    def one_sync(rb: RollbackContext[Any]) -> None:
        seen.append(("one_sync", rb.step_name))

    def optional(rb: Any = None) -> None:  # can take one: it gets the context
        seen.append(("optional", rb.step_name))

    async def body(event: Any, step: Any) -> Any:
        for name, handler in [("a", zero_sync), ("b", zero_async), ("c", one_sync),
                              ("d", optional)]:
            await step.do(name, lambda: None, rollback=handler)

        @step.do("e")
        async def e() -> None:
            raise NonRetryableError("stop")

        @e.rollback
        async def undo_e() -> None:
            seen.append("decorated_zero")

        await e()

    with pytest.raises(NonRetryableError):
        await MemoryBackend().run(flow(body), rollback=True)
    assert seen == ["decorated_zero", ("optional", "d-1"), ("one_sync", "c-1"), "zero_async",
                    "zero_sync"]


def two_args(rb: Any, extra: Any) -> None: ...


def keyword_only(*, rb: Any) -> None: ...


@pytest.mark.parametrize("handler", [two_args, keyword_only, lambda a, b, c=1: None])
@pytest.mark.parametrize("form", ["call", "decorator", "attach"])
async def test_a_handler_that_takes_neither_is_refused_when_registered(handler: Any,
                                                                       form: str) -> None:
    ran: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        with pytest.raises(InvalidStepConfigError,
                           match=r'^Rollback for "pay" must take one argument'):
            if form == "call":
                step.do("pay", lambda: ran.append("pay"), rollback=handler)
            elif form == "decorator":
                step.do("pay", rollback=handler)(lambda: ran.append("pay"))
            else:
                step.do("pay")(lambda: ran.append("pay")).rollback(handler)
        return "checked"

    assert await MemoryBackend().run(flow(body)) == "checked"
    assert ran == []


# -- 3. rb.error always has .name and .message ------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "kind", "name", "message"),
    [
        (NonRetryableError("closed"), NonRetryableError, "NonRetryableError", "closed"),
        (ValueError("bad amount"), ValueError, "ValueError", "bad amount"),
        (TypeError("not a number"), TypeError, "TypeError", "not a number"),
        (KeyError("x"), StepError, "KeyError", "'x'"),
        (RuntimeError("boom"), StepError, "RuntimeError", "boom"),
    ],
)
async def test_rb_error_has_name_and_message_and_keeps_its_type(
        raised: Exception, kind: type, name: str, message: str) -> None:
    errors: list[BaseException] = []

    async def body(event: Any, step: Any) -> Any:
        await step.do("pay", _raise(raised), config=NO_RETRIES,
                      rollback=lambda rb: errors.append(rb.error))

    with pytest.raises(kind) as info:
        await MemoryBackend().run(flow(body), rollback=True)
    for error in (errors[0], info.value):  # the handler's rb.error and what step.do raised
        assert isinstance(error, kind)
        assert (error.name, error.message) == (name, message)  # type: ignore[attr-defined]
        assert str(error) == str(error_from_record(ErrorRecord(name, message)))
    if kind is not StepError:
        assert str(errors[0]) == message  # str() unchanged: the message alone


def test_error_from_record_sets_name_and_message_on_builtin_types() -> None:
    error = error_from_record(ErrorRecord("ValueError", "v"))
    assert type(error) is ValueError and str(error) == "v" and error.args == ("v",)
    assert (error.name, error.message) == ("ValueError", "v")  # type: ignore[attr-defined]


# -- 4. NonRetryableError(message, name) ------------------------------------------------------


def test_non_retryable_error_takes_message_and_name() -> None:
    default, named = NonRetryableError("m"), NonRetryableError("card declined", "PaymentError")
    assert (default.name, default.message, str(default)) == ("NonRetryableError", "m", "m")
    assert (named.name, named.message, str(named)) == ("PaymentError", "card declined",
                                                       "card declined")
    assert str(NonRetryableError()) == "" and NonRetryableError().message == ""


class CardDeclined(NonRetryableError):
    pass


@pytest.mark.parametrize("raised", [NonRetryableError("card declined", "PaymentError"),
                                    CardDeclined("card declined")])
async def test_a_named_or_subclassed_non_retryable_error_is_not_retried(raised: Exception) -> None:
    # Non-retryable by class (JS's __brand); recorded as workers-sdk's engine and the Python
    # SDK's bridge record it: name NonRetryableError, the message kept.
    assert record_error(raised) == ErrorRecord("NonRetryableError", "card declined")

    async def body(event: Any, step: Any) -> Any:
        await step.do("pay", _raise(raised), config={"retries": {"limit": 3, "delay": 0}})

    backend = MemoryBackend()
    with pytest.raises(NonRetryableError) as info:
        await backend.run(flow(body))
    assert backend.attempts == [("pay-1", 1)]
    assert (info.value.name, info.value.message) == ("NonRetryableError", "card declined")


def test_pyodide_hands_the_sdk_bridge_a_plain_non_retryable_error() -> None:
    # workers' workflows.js recognises the Python error by its type name only.
    for raised in (CardDeclined("c"), NonRetryableError("n", "Named")):
        with pytest.raises(NonRetryableError) as info, plain_non_retryable():
            raise raised
        assert type(info.value) is NonRetryableError and str(info.value) == str(raised)


# -- 5. @fn.rollback after the step ran -------------------------------------------------------


async def test_attaching_a_handler_after_the_step_ran_is_refused() -> None:
    async def body(event: Any, step: Any) -> Any:
        @step.do("debit")
        async def debit() -> int:
            return 1

        await debit()
        with pytest.raises(InvalidStepConfigError,
                           match=r'^Step "debit" has already run: attach its rollback handler'):
            @debit.rollback
            def refund(rb: RollbackContext[Any]) -> None: ...
        return "checked"

    assert await MemoryBackend().run(flow(body)) == "checked"


def _raise(exc: Exception) -> Any:
    def fail() -> None:
        raise exc

    return fail
