"""`start_now`: run a coroutine at once, in the caller, and carry on as a task only if it suspends.

JS runs an ``async`` function synchronously up to its first ``await``; so does this. A step or
callback that never suspends costs no task and no trip through the event loop; one that does
carries on as a task of its own, which can be awaited, gathered, raced or left running.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_now(awaitable: Awaitable[T]) -> asyncio.Future[T]:
    """``awaitable`` run up to its first suspension: a finished future if it got to its end,
    else the task that carries it on. A failure nobody awaits is never reported as lost."""
    coro: Coroutine[Any, Any, T] = (  # the common case first: an exact coroutine is cheap to test
        awaitable if type(awaitable) is types.CoroutineType or isinstance(awaitable, Coroutine)
        else _awaited(awaitable))
    loop = asyncio.get_running_loop()
    try:
        pending = coro.send(None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except BaseException as exc:  # the coroutine's own error, handed to whoever awaits it
        failed: asyncio.Future[T] = loop.create_future()
        failed.set_exception(exc)
        failed.exception()  # marks it retrieved: awaiting it still raises
        return failed
    task = loop.create_task(_carry_on(coro, pending))
    task.add_done_callback(_retrieve)
    return task


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _carry_on(coro: Coroutine[Any, Any, T], pending: Any) -> T:
    result: T = await _resume(coro, pending)
    return result


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    """``yield from`` a coroutine that has already run up to yielding ``pending``."""
    while True:
        try:
            sent = yield pending
        except BaseException as exc:  # cancellation and anything thrown in go to the coroutine
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value
