"""The clock seam: every timer in the engine goes through a `Clock`.

`VirtualClock` (the default in the Python API) moves only when told to, so a 30-day sleep
costs no wall time; `RealClock` follows the wall clock (the dev server).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time as the engine sees it, in epoch milliseconds."""

    virtual: bool

    def now_ms(self) -> float:
        """The current time."""
        ...

    def call_at(self, at_ms: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` when the clock reaches ``at_ms``."""
        ...

    async def sleep_until(self, at_ms: float) -> None:
        """Return once the clock has reached ``at_ms``."""
        ...


class RealClock:
    """The wall clock."""

    virtual = False

    def now_ms(self) -> float:
        return time.time() * 1000.0

    def call_at(self, at_ms: float, callback: Callable[[], None]) -> TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, (at_ms - self.now_ms()) / 1000.0), callback)

    async def sleep_until(self, at_ms: float) -> None:
        while (remaining := at_ms - self.now_ms()) > 0:
            await asyncio.sleep(remaining / 1000.0)


class _VirtualTimer:
    __slots__ = ("at", "callback", "cancelled")

    def __init__(self, at: float, callback: Callable[[], None]) -> None:
        self.at = at
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A clock that stands still until `advance` or `advance_to` moves it.

    Args:
        start_ms: the starting time in epoch ms (default: the wall clock at creation).
    """

    virtual = True

    def __init__(self, start_ms: float | None = None) -> None:
        self._now = float(int(time.time() * 1000) if start_ms is None else start_ms)
        self._timers: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()

    def now_ms(self) -> float:
        return self._now

    def call_at(self, at_ms: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _VirtualTimer(at_ms, callback)
        if at_ms <= self._now:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        else:
            heapq.heappush(self._timers, (at_ms, next(self._seq), timer))
        return timer

    @staticmethod
    def _fire(timer: _VirtualTimer) -> None:
        if not timer.cancelled:
            timer.cancelled = True
            timer.callback()

    async def sleep_until(self, at_ms: float) -> None:
        if at_ms <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.call_at(at_ms, wake)
        try:
            await future
        finally:
            handle.cancel()

    def next_deadline(self) -> float | None:
        """When the earliest pending timer fires, or ``None`` if there is none."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance_to(self, at_ms: float) -> int:
        """Move to ``at_ms`` (never backwards), firing every timer due; return how many fired."""
        fired = 0
        while (deadline := self.next_deadline()) is not None and deadline <= at_ms:
            _, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, deadline)
            self._fire(timer)
            fired += 1
        self._now = max(self._now, at_ms)
        return fired

    def advance(self, ms: float) -> int:
        """Move forward by ``ms`` milliseconds, firing every timer due."""
        return self.advance_to(self._now + ms)
