"""Start a coroutine at once, in the caller, and carry on as a task only if it suspends.

A step callback usually returns without awaiting anything. Running it eagerly costs no task
and no loop iteration then; one that suspends moves to a task of its own, so the attempt can
stop waiting for it (a timeout) without cancelling it, as Cloudflare's engine, which races the
callback's promise against a timer, never cancels a callback either.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any


class Finished:
    """A callback that returned (or raised) without suspending."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def start(awaitable: Awaitable[Any]) -> Finished | asyncio.Task[Any]:
    """Run ``awaitable`` up to its first suspension; a `Finished` if it got to the end, else
    the task that carries it on."""
    coro = awaitable if isinstance(awaitable, Coroutine) else _awaited(awaitable)
    try:
        pending = coro.send(None)
    except StopIteration as stop:
        return Finished(stop.value)
    except BaseException as exc:  # handed back to the caller as the callback's own
        return Finished(error=exc)
    return asyncio.get_running_loop().create_task(_carry_on(coro, pending))


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _carry_on(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _resume(coro, pending)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    """``yield from`` a coroutine that has already run up to yielding ``pending``."""
    while True:
        try:
            sent = yield pending
        except BaseException as exc:  # cancellation and anything thrown in go to the callback
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value
