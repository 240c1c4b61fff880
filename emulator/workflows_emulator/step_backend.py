"""`EngineStepBackend`: ``step.do``, ``sleep`` and ``wait_for_event`` over an instance's store.

It implements the binding's `StepBackend` seam: it names and counts steps, replays
completed ones from the log, registers rollback handlers, and runs new ones through the
`AttemptRunner`. It sees the instance only through `StepHost`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from workflows_saga import Duration, WorkflowTimeoutError
from workflows_saga.backend import (
    ErrorRecord,
    ResolvedConfig,
    RollbackOptions,
    StepCall,
    duration_ms,
    error_from_record,
    parse_duration_ms,
    resolve_config,
)

from .attempts import AttemptHost, AttemptRunner, PlannedStep
from .errors import SleepInThePastError, WorkflowError, WorkflowFatalError
from .instance_store import InstanceStore
from .js_values import python_from_rpc
from .log_fold import StepRow, step_key
from .records import LogEvent
from .replay_guard import ReplayGuard
from .values import as_epoch_ms, encode_value, event_value, fresh, loads, validate_event_type

MAX_SLEEP_MS = 365 * 86_400_000
DEFAULT_EVENT_TIMEOUT = "24 hours"

HandlerRegistry = dict[str, RollbackOptions]
"""Step key -> its rollback handler: code is never persisted, so each run registers it."""


class StepHost(AttemptHost, Protocol):
    """What the step backend needs from the instance beyond the attempt loop."""

    async def park_until_event(self, at: float, event: asyncio.Future[None]) -> None:
        """Wait until ``at`` or until ``event`` is set, whichever comes first."""
        ...

    def refuse_steps_in_terminate_rollback(self) -> None:
        """Raise `WorkflowFatalError` while a terminate rollback runs."""
        ...


class EngineStepBackend:
    """Runs the steps of one instance's ``run()``."""

    def __init__(self, host: StepHost, store: InstanceStore, attempts: AttemptRunner,
                 registry: HandlerRegistry, step_limit: int, guard: ReplayGuard) -> None:
        self._host = host
        self._store = store
        self._attempts = attempts
        self._registry = registry
        self._clock = host.clock
        self.step_limit = step_limit
        self.replay_only = False
        """While true, steps only return what the log holds (to rebuild the handlers)."""
        self._counts: dict[tuple[str, str], int] = {}
        self._next_seq = 0
        self._do_steps = 0
        self._running: set[asyncio.Task[Any]] = set()
        self._event_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.guard = guard
        """Checks each replayed step against the log (the determinism guard)."""

    # -- bookkeeping, called by the engine ------------------------------------------------

    def new_run(self) -> None:
        """``run()`` starts (again) from the top: names are counted afresh."""
        self._counts.clear()
        self.guard.new_run(self._store.rows.values())

    def reloaded(self) -> None:
        """The store's rows were rebuilt: carry on numbering after them."""
        rows = self._store.rows.values()
        seqs = [r.seq for r in rows if r.kind != "rollback"]
        self._next_seq = max(seqs) + 1 if seqs else 0
        self._do_steps = sum(1 for r in rows if r.kind == "do")

    def event_delivered(self, event_type: str) -> None:
        """Wake every ``wait_for_event`` of ``event_type``."""
        for waiter in self._event_waiters.pop(event_type, []):
            if not waiter.done():
                waiter.set_result(None)

    def cancel_running(self) -> None:
        """Cancel steps still running in parallel (the instance failed or stopped)."""
        current = asyncio.current_task()
        for task in list(self._running):
            if task is not current:
                task.cancel()
        self._running.clear()

    def _count(self, kind: str, name: str) -> tuple[int, str]:
        count = self._counts.get((kind, name), 0) + 1
        self._counts[(kind, name)] = count
        return count, step_key(kind, name, count)

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _register(self, key: str, has_rollback: bool, call: StepCall) -> None:
        if call.rollback is not None and has_rollback:
            self._registry[key] = call.rollback

    # -- the StepBackend seam --------------------------------------------------------------

    async def do(self, call: StepCall) -> Any:
        host = self._host
        if host.stop_requested():
            await host.checkpoint()
        host.refuse_steps_in_terminate_rollback()
        count, key = self._count("do", call.name)
        resolved: ResolvedConfig | None = None
        if self.guard.replaying:  # resolved once: the guard compares it, the attempts use it
            resolved = resolve_config(call.config)
            self.guard.asked("do", call.name, count, resolved.shown)
        row = self._store.rows.get(key)
        if row is not None and row.state != "running":
            self._register(key, row.has_rollback, call)
            if row.state == "success":
                await self._pause_point()
                return fresh(row.output)
            raise error_from_record(row.error or ErrorRecord("Error", ""))
        if self.replay_only:
            if row is not None:
                self._register(key, row.has_rollback, call)
            return None
        if resolved is None:
            resolved = resolve_config(call.config)
        start: PlannedStep | None = None
        if row is None:
            start = self._plan_do(call, count, key, resolved)
        elif row.config is not None:  # the persisted config wins on replay
            resolved = ResolvedConfig.from_shown(row.config, resolved.delay_function)
        self._register(key, row.has_rollback if row is not None else True, call)
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            output = await self._attempts.run(row, start, call.callback, resolved)
        finally:
            if task is not None:
                self._running.discard(task)
        await self._pause_point()
        return output

    async def _pause_point(self) -> None:
        """After a step, a pause asked for meanwhile takes effect (as Cloudflare checks for
        one at the end of each ``step.do``), before ``run()`` goes on."""
        if self._host.stop_requested():
            await self._host.checkpoint()

    def _plan_do(self, call: StepCall, count: int, key: str,
                 resolved: ResolvedConfig) -> PlannedStep:
        if self._do_steps >= self.step_limit:
            raise WorkflowFatalError(
                f"The limit of {self.step_limit} steps has been reached. This limit can be "
                "changed in your worker configuration.")
        self._do_steps += 1
        return PlannedStep(key, "do", call.name, count, self._take_seq(), resolved.shown,
                           has_rollback=call.rollback is not None)

    async def sleep(self, name: str, duration: Duration) -> None:
        ms = duration_ms(duration, what="sleep duration")
        if ms > MAX_SLEEP_MS:
            raise WorkflowError(f'Sleep "{name}" is longer than the maximum of 365 days')
        await self._sleep(name, lambda now: now + ms)

    async def sleep_until(self, name: str, when: datetime | int | float) -> None:
        if isinstance(when, datetime):
            at = as_epoch_ms(when)
        elif isinstance(when, int | float) and not isinstance(when, bool):
            at = float(when)
        else:
            raise TypeError("sleep_until takes a datetime or epoch milliseconds")

        def wake(now: float) -> float:
            if at < now:
                raise SleepInThePastError("You can't sleep until a time in the past, time-traveler")
            return at

        await self._sleep(name, wake)

    async def _sleep(self, name: str, wake_at: Callable[[float], float]) -> None:
        await self._host.checkpoint()
        count, key = self._count("sleep", name)
        if self.guard.replaying:
            self.guard.asked("sleep", name, count)
        row = self._store.rows.get(key)
        if (row is not None and row.state == "success") or self.replay_only:
            return
        if row is None:
            now = self._clock.now_ms()
            row = self._start_timed(LogEvent.SLEEP_START, PlannedStep(
                key, "sleep", name, count, self._take_seq(), None), now, wake_at(now))
        modifier = self._host.modifier()
        if modifier is None or not modifier.sleep_off(name, count):  # a test may skip it
            await self._host.park_until(row.wake_at or 0.0)
        with self._store.transaction():
            self._store.append(LogEvent.SLEEP_COMPLETE, self._clock.now_ms(), row)

    async def wait_for_event(self, name: str, event_type: str, timeout: Duration) -> dict[str, Any]:
        validate_event_type(event_type)
        # As Cloudflare's engine: no timeout (or 0) means 24 hours, and no other bound
        # (its documentation states 1 second to 365 days; the engine does not enforce it).
        ms = parse_duration_ms(timeout or DEFAULT_EVENT_TIMEOUT)
        if ms is None or ms < 0:
            raise WorkflowError(
                f'waitForEvent "{name}": timeout {timeout!r} is not a duration: use '
                'milliseconds or a string such as "24 hours"')
        await self._host.checkpoint()
        self._host.refuse_steps_in_terminate_rollback()
        count, key = self._count("wait", name)
        if self.guard.replaying:
            self.guard.asked("wait", name, count)
        row = self._store.rows.get(key)
        if row is not None and row.state == "success":
            event: dict[str, Any] = python_from_rpc(event_value(fresh(row.output)))
            return event
        if row is not None and row.state == "failure":
            raise error_from_record(row.error or ErrorRecord("Error", ""))
        if self.replay_only:
            return None  # type: ignore[return-value]
        if row is None:
            now = self._clock.now_ms()
            row = self._start_timed(LogEvent.WAIT_START, PlannedStep(
                key, "wait", name, count, self._take_seq(), {"type": event_type, "timeout": ms}),
                now, now + ms)
        return await self._await_event(row, event_type, ms)

    async def _await_event(self, row: StepRow, event_type: str, ms: float) -> dict[str, Any]:
        store, clock = self._store, self._clock
        modifier = self._host.modifier()
        forced_timeout = modifier is not None and modifier.event_timeout(row.name, row.count)
        mocked, payload = (modifier.mocked_event(event_type) if modifier is not None
                           else (False, None))
        while True:
            got: tuple[int | None, dict[str, Any]] | None = store.oldest_event(event_type)
            if mocked and not forced_timeout:  # a test's event, as if it had been sent
                got = (None, {"payload": loads(encode_value(payload, what="mocked event")),
                              "timestamp": clock.now_ms(), "type": event_type})
            if got is not None and not forced_timeout:
                event_id, value = got
                with store.transaction():
                    if event_id is not None:
                        store.take_event(event_id)
                    store.append(LogEvent.WAIT_COMPLETE, clock.now_ms(), row,
                                 data={"eventType": event_type, "output": value})
                delivered: dict[str, Any] = python_from_rpc(event_value(fresh(value)))
                return delivered
            if forced_timeout or (row.wake_at is not None and clock.now_ms() >= row.wake_at):
                err = ErrorRecord("WorkflowTimeoutError", f"Execution timed out after {int(ms)}ms")
                with store.transaction():
                    store.append(LogEvent.WAIT_TIMEOUT, clock.now_ms(), row,
                                 data={"error": err.to_json()})
                raise WorkflowTimeoutError(err.message)
            waiter = asyncio.get_running_loop().create_future()
            self._event_waiters.setdefault(event_type, []).append(waiter)
            await self._host.park_until_event(row.wake_at or 0.0, waiter)

    def _start_timed(self, event: LogEvent, planned: PlannedStep, now: float,
                     until: float) -> StepRow:
        """Log the start of a sleep or an event wait that ends (or times out) at ``until``."""
        data = {**planned.start_data(), "until": until}
        with self._store.transaction():
            row = self._store.append(event, now, key=planned.key, label=planned.label, data=data)
        assert row is not None
        return row

