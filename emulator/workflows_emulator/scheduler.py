"""`Scheduler`: concurrency slots, activity, and virtual-time driving for every instance.

It is the `EngineHost` of every `InstanceEngine` of one emulator: engines ask it for a slot,
tell it when callbacks start and end, when statuses change and when they log. It decides
when nothing more can happen without moving time, and moves the virtual clock then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workflows_saga import Duration
from workflows_saga.backend import duration_ms

from .clock import Clock, VirtualClock
from .errors import EmulatorError
from .instance_index import InstanceIndex
from .log_fold import public_data
from .modifiers import Modifiers
from .quiescence import has_ready_callbacks
from .records import InstanceStatus
from .values import dumps, loads

if TYPE_CHECKING:
    from .engine import InstanceEngine

_SlotWaiter = tuple[int, int, asyncio.Future[None], "InstanceEngine"]


class Scheduler:
    """Runs instances side by side on one event loop and one clock.

    Args:
        clock: the clock every instance uses.
        index: the state directory's instance index (statuses are mirrored into it).
        max_concurrency: how many instances may hold a slot at once (``None``: no limit).
    """

    def __init__(self, clock: Clock, index: InstanceIndex, max_concurrency: int | None) -> None:
        self._clock = clock
        self._index = index
        self.max_concurrency = max_concurrency
        self._busy = 0
        self._activity_count = 0
        self._activity = asyncio.Event()
        self._activity_waiters = 0
        self._slots: set[InstanceEngine] = set()
        self._slot_waiters: list[_SlotWaiter] = []
        self._slot_seq = 0
        self._subscribers: dict[tuple[str, str], list[asyncio.Queue[dict[str, Any]]]] = {}
        self.on_finished: Callable[[InstanceEngine], None] = lambda engine: None
        self.modifiers = Modifiers()
        self.determinism = "error"
        self.log_watchers: list[Callable[[InstanceEngine, str, str | None], None]] = []
        """Told of every log entry appended (fault injection's crash points)."""
        """Told when an instance reaches a terminal status (its owner may let it go)."""

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def busy(self) -> bool:
        """Whether any step callback or rollback handler is running."""
        return self._busy > 0

    # -- EngineHost: slots ---------------------------------------------------------------------

    async def acquire_slot(self, engine: InstanceEngine, waking: bool = False) -> None:
        limit = self.max_concurrency
        if limit is None or engine in self._slots:
            return
        if len(self._slots) < limit and not self._slot_waiters:
            self._slots.add(engine)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_seq += 1
        self._slot_waiters.append((0 if waking else 1, self._slot_seq, future, engine))
        self._slot_waiters.sort(key=lambda w: (w[0], w[1]))
        engine.mark_queued()
        try:
            await future
        except asyncio.CancelledError:
            self._slot_waiters = [w for w in self._slot_waiters if w[2] is not future]
            if future.done() and not future.cancelled():
                self.release_slot(engine)
            raise

    def release_slot(self, engine: InstanceEngine) -> None:
        if engine not in self._slots:
            return
        self._slots.discard(engine)
        while self._slot_waiters and self.max_concurrency is not None and (
            len(self._slots) < self.max_concurrency
        ):
            _, _, future, waiter = self._slot_waiters.pop(0)
            if not future.done():
                self._slots.add(waiter)
                future.set_result(None)

    # -- EngineHost: what happened ---------------------------------------------------------------

    def busy_changed(self, delta: int) -> None:
        self._busy += delta
        self.activity()

    def activity(self) -> None:
        self._activity_count += 1
        if self._activity_waiters:
            self._activity.set()
            self._activity = asyncio.Event()

    def status_changed(self, engine: InstanceEngine) -> None:
        self._index.set_status(engine.workflow, engine.id, engine.status, self._clock.now_ms())
        if engine.terminal:
            self.on_finished(engine)
        self.activity()

    def logged(self, engine: InstanceEngine, event_id: int, event: str, step: str | None,
               attempt: int | None, data: dict[str, Any] | None, ts: float) -> None:
        self._activity_count += 1
        for watcher in self.log_watchers:
            watcher(engine, event, step)
        queues = self._subscribers.get((engine.workflow, engine.id))
        if queues:
            entry = {"id": event_id, "timestamp": ts, "event": str(event), "step": step,
                     "attempt": attempt,
                     "data": loads(dumps(public_data(data)))}  # no aliasing
            for queue in queues:
                queue.put_nowait(entry)

    # -- subscriptions ----------------------------------------------------------------------------

    def subscribe(self, workflow: str, instance_id: str) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives every entry the instance logs from now on."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.setdefault((workflow, instance_id), []).append(queue)
        return queue

    def unsubscribe(self, workflow: str, instance_id: str,
                    queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop feeding ``queue``."""
        queues = self._subscribers.get((workflow, instance_id), [])
        if queue in queues:
            queues.remove(queue)
        if not queues:
            self._subscribers.pop((workflow, instance_id), None)

    # -- driving time -----------------------------------------------------------------------------

    async def settle(self) -> None:
        """Let instances run until nothing more is ready (running callbacks may go on)."""
        for _ in range(10_000):
            if await self._quiet(ignore_busy=True):
                return

    async def advance(self, duration: Duration) -> None:
        """Move the virtual clock forward by ``duration``, firing timers in order."""
        clock = self._clock
        if not isinstance(clock, VirtualClock):
            raise EmulatorError("advance() needs the virtual clock (Emulator(clock='virtual'))")
        target = clock.now_ms() + duration_ms(duration, what="advance duration")
        await self.settle()
        while (nxt := clock.next_deadline()) is not None and nxt <= target:
            clock.advance_to(nxt)
            await self.settle()
        clock.advance_to(target)
        await self.settle()

    async def _quiet(self, ignore_busy: bool = False) -> bool:
        for _ in range(3):
            mark = self._activity_count
            await asyncio.sleep(0)
            if (self._busy and not ignore_busy) or mark != self._activity_count:
                return False
        return not has_ready_callbacks(asyncio.get_running_loop())

    async def _wait_activity(self, timeout: float) -> None:
        event = self._activity
        self._activity_waiters += 1
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._activity_waiters -= 1

    async def drive_until(self, engine: InstanceEngine, done: Callable[[], bool],
                          timeout: float | None) -> None:
        """Let ``engine`` (and every other instance) run until ``done()``.

        With the virtual clock, time jumps to the next timer whenever nothing else can move.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not done():
            if engine.fault is not None:
                raise engine.fault
            if engine.divergence is not None:
                raise engine.divergence
            if deadline is not None and loop.time() > deadline:
                raise TimeoutError(f"instance {engine.id} is still {engine.status}")
            if isinstance(self._clock, VirtualClock) and self._busy == 0:
                if not await self._quiet():
                    continue  # something ran: look again
                if done():
                    return
                self._jump_to_next_timer(self._clock, engine)
                continue
            await self._wait_activity(0.05 if self._busy else 0.5)

    @staticmethod
    def _jump_to_next_timer(clock: VirtualClock, engine: InstanceEngine) -> None:
        if not engine.running and engine.status == InstanceStatus.PAUSED:
            raise EmulatorError(
                f"instance {engine.id} is paused: resume() it before waiting on it")
        nxt = clock.next_deadline()
        if nxt is None:
            raise EmulatorError(
                f"instance {engine.id} is {engine.status} and nothing can move it on: "
                "no timer is pending and no step is running")
        clock.advance_to(nxt)
