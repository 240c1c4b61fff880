"""`start_now`: a callback runs at once, up to its first suspension, as a JS async function."""

from __future__ import annotations

import asyncio
import gc

from workflows_saga.backend import start_now


async def test_a_callback_that_does_not_suspend_finishes_before_start_now_returns() -> None:
    ran: list[str] = []

    async def quick() -> int:
        ran.append("ran")
        return 7

    done = start_now(quick())
    assert ran == ["ran"] and done.done() and await done == 7 and await done == 7


async def test_a_failure_is_kept_for_whoever_awaits_and_never_reported_as_lost() -> None:
    async def raises() -> None:
        raise KeyError("k")

    failed = start_now(raises())
    assert failed.done() and isinstance(failed.exception(), KeyError)
    del failed
    gc.collect()  # no "exception was never retrieved" (warnings are errors here)


async def test_one_that_suspends_carries_on_as_a_task_and_can_be_cancelled() -> None:
    order: list[str] = []

    async def suspends() -> int:
        order.append("before")
        await asyncio.sleep(0)
        order.append("after")
        return 8

    task = start_now(suspends())
    assert order == ["before"] and not task.done()
    assert await task == 8 and order == ["before", "after"]
    blocked = start_now(asyncio.Event().wait())
    blocked.cancel()
    await asyncio.gather(blocked, return_exceptions=True)
    assert blocked.cancelled()


async def test_a_task_cancelled_before_it_ever_ran_cancels_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaned.append("cancelled where it waited")
            raise

    task = start_now(waits())
    task.cancel()  # before the task's first step
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and cleaned == ["cancelled where it waited"]


async def test_context_changes_inside_stay_inside_as_with_a_task() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")

    async def sets_and_resets() -> str:
        token = var.set("inside")
        try:
            await asyncio.sleep(0)
            return var.get()
        finally:
            var.reset(token)  # would fail if the first step ran in another context

    async def sets() -> None:
        var.set("leaked?")

    assert await start_now(sets_and_resets()) == "inside"
    await start_now(sets())
    assert var.get() == "outside"
