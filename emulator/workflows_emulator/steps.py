"""The step backend half of the engine: ``do``, ``sleep``, ``wait_for_event`` and the attempt
loop that forward steps and rollback handlers share (retries, backoff, timeouts, outputs)."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workflows_saga import StepContext
from workflows_saga._backend import StepCall
from workflows_saga._config import ResolvedConfig, resolve_config
from workflows_saga._durations import Duration, duration_ms, parse_duration_ms
from workflows_saga._errors import (
    WorkflowTimeoutError,
    error_from_record,
    error_record,
    is_non_retryable,
)

from .errors import SleepInThePastError, WorkflowError, WorkflowFatalError
from .events import FORWARD, StepEvents
from .step_log import StepRow
from .values import (
    UnserialisableOutput,
    decode,
    encode_step_output,
    event_value,
    validate_event_type,
)

if TYPE_CHECKING:
    from .clock import Clock
    from .durable_object import DurableObjectStorage
    from .host import EngineHost
    from .step_log import InstanceLog

MAX_SLEEP_MS = 365 * 86_400_000
DELAY_FUNCTION_TIMEOUT_S = 5.0


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


class _DelayFunctionError(Exception):
    """A retry delay function failed: the step fails for good (``NonRetryableDelayError``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.record = {"name": "NonRetryableDelayError", "message": message}


class FatalAbort(BaseException):
    """Ends the instance at once, with no rollback (an unserialisable step output).

    Internal control flow: do not catch this.
    """

    def __init__(self, record: dict[str, str]) -> None:
        super().__init__(record["message"])
        self.record = record


@dataclass(slots=True)
class PlannedStep:
    """A step about to begin: it gets a row when its first attempt is logged."""

    key: str
    kind: str
    name: str
    count: int
    seq: int
    config: dict[str, Any] | None
    has_rollback: bool = False

    @property
    def label(self) -> str:
        return self.name if self.kind == "rollback" else f"{self.name}-{self.count}"

    def start_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "name": self.name, "count": self.count,
                                "seq": self.seq, "config": self.config}
        if self.has_rollback:
            data["hasRollback"] = True
        return data

    def start_text(self, config_text: str) -> str:
        """`start_data` as JSON, with the config already encoded (the hot path)."""
        extra = ', "hasRollback": true' if self.has_rollback else ""
        return (f'{{"kind": "{self.kind}", "name": {json.dumps(self.name)}, "count": '
                f'{self.count}, "seq": {self.seq}, "config": {config_text}{extra}}}')


_DEFAULT_RESOLVED = resolve_config(None)
_DEFAULT_SHOWN = _DEFAULT_RESOLVED.shown
_DEFAULT_SHOWN_TEXT = json.dumps(_DEFAULT_SHOWN)


def shown_config(resolved: ResolvedConfig) -> Any:
    return resolved.shown


def resolve_or_default(config: Any) -> ResolvedConfig:
    return resolve_config(config)


def step_key(kind: str, name: str, count: int) -> str:
    """The cache key of the ``count``-th ``kind`` step called ``name``."""
    return f"{kind}:{count}:{name}"


class StepExecution:
    """Runs steps for `InstanceEngine` (a mixin: the engine owns the state named below)."""

    host: EngineHost
    clock: Clock
    log: InstanceLog
    storage: DurableObjectStorage
    meta: dict[str, Any]
    step_limit: int
    _do_steps: int
    _busy: int
    _replay_only: bool
    _step_tasks: set[asyncio.Task[Any]]
    _event_waiters: dict[str, list[asyncio.Future[None]]]

    if TYPE_CHECKING:  # provided by the engine and the rollback phase
        @property
        def rows(self) -> dict[str, StepRow]: ...
        def _next_count(self, kind: str, name: str) -> int: ...
        def _take_seq(self) -> int: ...
        def _register(self, key: str, has_rollback: int | bool, call: StepCall) -> None: ...
        def _refuse_during_terminate_rollback(self) -> None: ...
        async def _checkpoint(self) -> None: ...
        def _stop_requested(self) -> bool: ...
        def _after_callback(self) -> None: ...
        async def _park_until(self, at: float,
                              also: asyncio.Future[None] | None = None) -> None: ...

    # == the step backend seam ==================================================================

    async def do(self, call: StepCall) -> Any:
        if self._stop_requested():
            await self._checkpoint()
        self._refuse_during_terminate_rollback()
        count = self._next_count("do", call.name)
        key = step_key("do", call.name, count)
        row = self.rows.get(key)
        if row is not None and row.state != "running":
            self._register(key, row.has_rollback, call)
            if row.state == "success":
                return decode(row.output)
            raise error_from_record(json.loads(row.error or "{}"))
        if self._replay_only:
            if row is not None:
                self._register(key, row.has_rollback, call)
            return None
        resolved = resolve_or_default(call.config)
        start: PlannedStep | None = None
        if row is None:
            if self._do_steps >= self.step_limit:
                raise WorkflowFatalError(
                    f"The limit of {self.step_limit} steps has been reached. This limit can be "
                    "changed in your worker configuration.")
            self._do_steps += 1
            start = PlannedStep(key, "do", call.name, count, self._take_seq(),
                                shown_config(resolved),
                                has_rollback=call.rollback is not None)
        else:
            stored = json.loads(row.config or "null")
            if stored is not None:  # the persisted config wins on replay (a delay function stays)
                resolved = ResolvedConfig.from_shown(stored, resolved.delay_function)
        self._register(key, row.has_rollback if row is not None else True, call)
        task = asyncio.current_task()
        if task is not None:
            self._step_tasks.add(task)
        try:
            return await self._attempts(row, start, call.callback, resolved, FORWARD)
        finally:
            if task is not None:
                self._step_tasks.discard(task)

    async def sleep(self, name: str, duration: Duration) -> None:
        ms = duration_ms(duration, what="sleep duration")
        if ms > MAX_SLEEP_MS:
            raise WorkflowError(f'Sleep "{name}" is longer than the maximum of 365 days')
        await self._sleep(name, lambda now: now + ms)

    async def sleep_until(self, name: str, when: datetime | int | float) -> None:
        if isinstance(when, datetime):
            at = when.timestamp() * 1000.0
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
        await self._checkpoint()
        count = self._next_count("sleep", name)
        key = step_key("sleep", name, count)
        row = self.rows.get(key)
        if (row is not None and row.state == "success") or self._replay_only:
            return
        if row is None:
            now = self.clock.now_ms()
            row = self._start_timed_step("SLEEP_START", PlannedStep(
                key, "sleep", name, count, self._take_seq(), None), now, wake_at(now))
        await self._park_until(row.wake_at or 0.0)
        with self.log.transaction():
            self.log.append("SLEEP_COMPLETE", self.clock.now_ms(), row)

    async def wait_for_event(self, name: str, event_type: str, timeout: Duration) -> dict[str, Any]:
        validate_event_type(event_type)
        ms = parse_duration_ms(timeout)
        if ms is None or ms < 1000 or ms > MAX_SLEEP_MS:
            raise WorkflowError(
                f'waitForEvent "{name}": timeout must be between 1 second and 365 days')
        await self._checkpoint()
        self._refuse_during_terminate_rollback()
        count = self._next_count("wait", name)
        key = step_key("wait", name, count)
        row = self.rows.get(key)
        if row is not None and row.state == "success":
            return event_value(decode(row.output))
        if row is not None and row.state == "failure":
            raise error_from_record(json.loads(row.error or "{}"))
        if self._replay_only:
            return None  # type: ignore[return-value]
        if row is None:
            now = self.clock.now_ms()
            row = self._start_timed_step("WAIT_START", PlannedStep(
                key, "wait", name, count, self._take_seq(), {"type": event_type, "timeout": ms}),
                now, now + ms)
        while True:
            got = self.storage.sql.exec(
                "SELECT id, payload, ts FROM inbox WHERE type = ? ORDER BY id LIMIT 1",
                event_type).first()
            if got is not None:
                value = {"payload": json.loads(got["payload"]), "timestamp": got["ts"],
                         "type": event_type}
                with self.log.transaction():
                    self.storage.sql.exec("DELETE FROM inbox WHERE id = ?", got["id"])
                    self.log.append("WAIT_COMPLETE", self.clock.now_ms(), row,
                                    data={"eventType": event_type, "output": value})
                return event_value(value)
            if row.wake_at is not None and self.clock.now_ms() >= row.wake_at:
                err = {"name": "WorkflowTimeoutError",
                       "message": f"Execution timed out after {int(ms)}ms"}
                with self.log.transaction():
                    self.log.append("WAIT_TIMEOUT", self.clock.now_ms(), row, data={"error": err})
                raise WorkflowTimeoutError(err["message"])
            waiter = asyncio.get_running_loop().create_future()
            self._event_waiters.setdefault(event_type, []).append(waiter)
            await self._park_until(row.wake_at or 0.0, also=waiter)

    def _start_timed_step(self, event: str, planned: PlannedStep, now: float,
                          until: float) -> StepRow:
        """Log the start of a sleep or an event wait that ends (or times out) at ``until``."""
        with self.log.transaction():
            row = self.log.append(event, now, key=planned.key, label=planned.label,
                                  data={**planned.start_data(), "until": until})
        assert row is not None
        return row

    # == attempts, shared by forward steps and rollback handlers ==================================

    async def _attempts(
        self,
        row: StepRow | None,
        start: PlannedStep | None,
        invoke: Callable[[StepContext], Awaitable[Any]],
        resolved: ResolvedConfig,
        events: StepEvents,
    ) -> Any:
        """Run attempts until one succeeds or none is left; every transition is committed."""
        allowed, shown_config, limit_ms = resolved.attempts, resolved.shown, resolved.timeout_ms
        task = asyncio.current_task()
        assert task is not None
        while True:
            if row is not None and row.wake_at is not None and row.wake_at > self.clock.now_ms():
                await self._park_until(row.wake_at)
            if self._stop_requested():
                await self._checkpoint()
            now = self.clock.now_ms()
            with self.log.transaction():
                if row is None:
                    assert start is not None
                    if start.config is _DEFAULT_SHOWN:
                        row = self.log.append(
                            events.step_start, now, key=start.key, label=start.label,
                            data=start.start_data(), texts={"config": _DEFAULT_SHOWN_TEXT},
                            text=start.start_text(_DEFAULT_SHOWN_TEXT))
                    else:
                        row = self.log.append(events.step_start, now, key=start.key,
                                              label=start.label, data=start.start_data())
                    assert row is not None
                attempt = row.attempts + 1
                self.log.append(events.attempt_start, now, row, attempt=attempt)
            ctx = StepContext.build(row.name, row.count, attempt, shown_config)
            self._busy += 1
            self.host.busy_changed(+1)
            try:
                value = await self._with_timeout(task, invoke(ctx), limit_ms)
                encoded = encode_step_output(value, row.label)
            except UnserialisableOutput as exc:
                self._abort_unserialisable(row, exc)
            except Exception as exc:
                record = error_record(exc)
                retry = attempt < allowed and not is_non_retryable(record)
                delay = None
                if retry:
                    try:
                        delay = await self._retry_delay(resolved, attempt, ctx, exc, row.label)
                    except _DelayFunctionError as bad:
                        record = bad.record
                data: dict[str, Any] = {"error": record}
                if delay is not None:
                    data["retryDelayMs"] = delay
                with self.log.transaction():
                    now = self.clock.now_ms()
                    self.log.append(events.attempt_failure, now, row, attempt=attempt, data=data)
                    if delay is None:
                        self.log.append(events.step_failure, now, row, data={"error": record})
                if delay is None:
                    raise error_from_record(record) from exc
                continue
            finally:
                self._busy -= 1
                self.host.busy_changed(-1)
                self._after_callback()
            with self.log.transaction():
                now = self.clock.now_ms()
                self.log.append(events.attempt_success, now, row, attempt=attempt)
                output = json.loads(encoded)
                self.log.append(events.step_success, now, row, data={"output": output},
                                texts={"output": encoded}, text=f'{{"output": {encoded}}}')
            return output

    async def _retry_delay(self, resolved: ResolvedConfig, attempt: int, ctx: StepContext,
                           exc: BaseException, label: str) -> int:
        """The wait before the next attempt: the (possibly dynamic) base delay, backed off.

        Raises:
            _DelayFunctionError: a delay function threw, hung (5 s) or returned nonsense.
        """
        delay = resolved.delay_function
        if delay is not None:
            try:
                got = delay({"ctx": ctx, "error": exc})
                if inspect.isawaitable(got):
                    got = await asyncio.wait_for(_awaited(got), DELAY_FUNCTION_TIMEOUT_S)
            except Exception as failure:
                raise _DelayFunctionError(
                    f'The delay function for step "{label}" threw an error: {failure}'
                ) from failure
            base = parse_duration_ms(got)
            if base is None or base < 0:
                raise _DelayFunctionError(
                    f'The delay function for step "{label}" returned an invalid delay value '
                    '(expected a number of ms or a duration string like "30 seconds")')
            return resolved.retry_delay_ms(attempt, base)
        return resolved.retry_delay_ms(attempt)

    async def _with_timeout(self, task: asyncio.Task[Any], awaitable: Awaitable[Any],
                            ms: int) -> Any:
        fired = False

        def on_timeout() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = self.clock.call_at(self.clock.now_ms() + ms, on_timeout)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if fired and task.uncancel() == 0:
                raise WorkflowTimeoutError(f"Execution timed out after {ms}ms") from None
            raise
        finally:
            handle.cancel()

    def _abort_unserialisable(self, row: StepRow, exc: UnserialisableOutput) -> None:
        attempt_err = {"name": "WorkflowFatalError",
                       "message": f'Value returned from step "{row.name}" is not serialisable'}
        now = self.clock.now_ms()
        with self.log.transaction():
            self.log.append(FORWARD.attempt_failure, now, row, attempt=row.attempts,
                            data={"error": attempt_err})
            self.log.append(FORWARD.step_failure, now, row, data={"error": attempt_err})
        raise FatalAbort({
            "name": "WorkflowFatalError",
            "message": "The execution of the Workflow instance was terminated, as the step "
            f'"{row.name}" returned a value which is not serialisable',
        }) from exc
