"""`start_now`: run a coroutine at once, in the caller, and carry on as a task only if it suspends.

JS runs an ``async`` function synchronously up to its first ``await``; so does this. A step or
callback that never suspends costs no task and no trip through the event loop; one that does
carries on as a task of its own, which can be awaited, gathered, raced or left running.
"""

from __future__ import annotations

import asyncio
import contextvars
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
    context = contextvars.copy_context()  # its own, as a task's: nothing leaks to the caller
    try:
        pending = context.run(coro.send, None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except BaseException as exc:  # the coroutine's own error, handed to whoever awaits it
        failed: asyncio.Future[T] = loop.create_future()
        failed.set_exception(exc)
        failed.exception()  # marks it retrieved: awaiting it still raises
        return failed
    task: asyncio.Task[T] = loop.create_task(_Resumed(coro, pending), context=context)
    task.add_done_callback(_retrieve)
    return task


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class _Resumed(Coroutine[Any, Any, T]):
    """A coroutine that already ran up to yielding ``pending``, ready for a task to carry on.

    Whatever the task sends or throws goes to the coroutine, from the very first step: a task
    cancelled before it ever ran cancels the coroutine where it is suspended (a wrapper
    ``async def`` would swallow that cancellation without telling it).
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, T], pending: Any) -> None:
        self._coro = coro
        self._pending: Any = pending

    def send(self, value: Any) -> Any:
        pending, self._pending = self._pending, _SENT
        if pending is not _SENT:
            return pending
        return self._coro.send(value)

    def throw(self, exc: Any, *args: Any) -> Any:
        pending, self._pending = self._pending, _SENT
        if pending is not _SENT and isinstance(pending, asyncio.Future):
            # Thrown in before the task took over what the coroutine waits on: release it as
            # a task would (a cancellation also cancels it, as Task.cancel does).
            pending._asyncio_future_blocking = False
            if isinstance(exc, asyncio.CancelledError):
                pending.cancel()
        return self._coro.throw(exc, *args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, T]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def __iter__(self) -> _Resumed[T]:
        return self


_SENT = object()
