"""`AttemptRunner`: runs a step or rollback handler attempt by attempt (retries, backoff, timeouts).

It sees the instance only through `AttemptHost` (checkpoint, park until, busy) and writes
only through the instance's `InstanceStore`; forward steps and rollback handlers share it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from workflows_saga import StepContext, WorkflowTimeoutError
from workflows_saga.backend import (
    DEFAULT_RESOLVED,
    ErrorRecord,
    ResolvedConfig,
    error_from_record,
    parse_duration_ms,
    record_error,
    start_now,
)

from .clock import Clock
from .compat import CURRENT, Compatibility
from .instance_store import InstanceStore
from .log_fold import StepRow
from .modifiers import InstanceModifier
from .records import FORWARD, ROLLBACK, StepEvents
from .values import UnserialisableOutput, encode_step_output, loads

DELAY_FUNCTION_TIMEOUT_S = 5.0
INTERNAL_ERROR = ErrorRecord("WorkflowInternalError", "Attempt failed due to internal workflows error")
"""What an attempt cut off by a crash failed with."""
_DEFAULT_SHOWN = DEFAULT_RESOLVED.shown
_DEFAULT_SHOWN_TEXT = json.dumps(_DEFAULT_SHOWN)


def own_copy(config: Mapping[str, Any]) -> dict[str, Any]:
    """A step context's own copy of a shown config (a step may change what it is given)."""
    copied = dict(config)
    if isinstance(copied.get("retries"), Mapping):
        copied["retries"] = dict(copied["retries"])
    return copied


class AttemptHost(Protocol):
    """What the attempt loop needs from the instance it runs for."""

    @property
    def clock(self) -> Clock: ...

    def stop_requested(self) -> bool:
        """Whether a pause, terminate or shutdown waits at the next checkpoint."""
        ...

    async def checkpoint(self) -> None:
        """Where a stop asked for meanwhile takes effect (may never return)."""
        ...

    async def park_until(self, at: float) -> None:
        """Wait, durably, until ``at`` (epoch ms)."""
        ...

    def callback_started(self) -> None:
        """A step callback or handler is about to run."""
        ...

    def callback_finished(self) -> None:
        """It returned or raised."""
        ...

    def modifier(self) -> InstanceModifier | None:
        """What a test changed about this instance's steps, if anything."""
        ...


class FatalAbort(BaseException):
    """Ends the instance at once, with no rollback (an unserialisable step output).

    Internal control flow: do not catch this.
    """

    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record


class _DelayFunctionError(Exception):
    """A retry delay function failed: the step fails for good (``NonRetryableDelayError``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.record = ErrorRecord("NonRetryableDelayError", message)


@dataclass(slots=True)
class PlannedStep:
    """A step about to begin: it gets a row when its first attempt is logged."""

    key: str
    kind: str
    name: str
    count: int
    seq: int
    config: Mapping[str, Any] | None
    """The config as shown and stored (a resolved config's ``shown``)."""
    has_rollback: bool = False

    @property
    def label(self) -> str:
        return self.name if self.kind == "rollback" else f"{self.name}-{self.count}"

    def start_data(self) -> dict[str, Any]:
        """The start entry's data (the fold builds the row from it)."""
        data: dict[str, Any] = {"kind": self.kind, "name": self.name, "count": self.count,
                                "seq": self.seq, "config": self.config}
        if self.has_rollback:
            data["hasRollback"] = True
        return data

    def start_text(self) -> str | None:
        """`start_data` as JSON where the defaults' config text can be reused (the hot path)."""
        if self.config is not _DEFAULT_SHOWN:
            return None
        extra = ', "hasRollback": true' if self.has_rollback else ""
        return (f'{{"kind": "{self.kind}", "name": {json.dumps(self.name)}, "count": '
                f'{self.count}, "seq": {self.seq}, "config": {_DEFAULT_SHOWN_TEXT}{extra}}}')


Invoke = Callable[[StepContext], Awaitable[Any]]


class AttemptRunner:
    """Runs attempts until one succeeds or none is left; every transition is committed."""

    def __init__(self, host: AttemptHost, store: InstanceStore,
                 compat: Compatibility = CURRENT) -> None:
        self._host = host
        self._store = store
        self._clock = host.clock
        self._compat = compat
        self._callbacks: set[asyncio.Future[Any]] = set()
        """Callbacks that suspended and have not ended (awaited, or past their timeout)."""

    async def run(self, row: StepRow | None, start: PlannedStep | None, invoke: Invoke,
                  resolved: ResolvedConfig, events: StepEvents = FORWARD) -> Any:
        """Run ``invoke`` (logging ``start`` first if the step has no ``row`` yet).

        Returns the output as stored (decoded JSON); raises the step's final error.
        """
        host, store, clock = self._host, self._store, self._clock
        while True:
            if row is not None and row.wake_at is not None and row.wake_at > clock.now_ms():
                await host.park_until(row.wake_at)
            if host.stop_requested():
                await host.checkpoint()
            now = clock.now_ms()
            with store.transaction():
                if row is None:
                    assert start is not None
                    row = store.append(events.step_start, now, key=start.key, label=start.label,
                                       data=start.start_data(), text=start.start_text())
                    assert row is not None
                attempt = row.attempts + 1
                store.append(events.attempt_start, now, row, attempt=attempt)
            ctx = StepContext.build(row.name, row.count, attempt, own_copy(resolved.shown))
            modifier = host.modifier() if events is FORWARD else None
            override = (modifier.attempt(row.name, row.count, attempt) if modifier is not None
                        else None)
            host.callback_started()
            try:
                if override is not None:  # a test's mocked result, error or timeout
                    value = override.apply()
                else:  # run up to its first suspension here: one that never suspends is done
                    started = start_now(invoke(ctx))
                    value = (started.result() if started.done()
                             else await self._with_timeout(started, resolved.timeout_ms))
                encoded = encode_step_output(value, row.label)
            except UnserialisableOutput as exc:
                self._abort_unserialisable(row, exc)
            except Exception as exc:
                await self._failed(row, attempt, exc, ctx, resolved, events)
                continue
            finally:
                host.callback_finished()
            with store.deferred():  # committed by what comes next: see `deferred`
                now = clock.now_ms()
                store.append(events.attempt_success, now, row, attempt=attempt)
                store.append(events.step_success, now, row, data={"output": loads(encoded)},
                             text=f'{{"output": {encoded}}}')
            return loads(encoded)

    def recover_cut_off(self) -> None:
        """An attempt in flight when the process died counts as failed, and is retried.

        Retried at once (no backoff), as Cloudflare's engine does, within the step's limit.
        """
        store = self._store
        for row in list(store.rows.values()):
            if row.state != "running" or not row.attempt_open:
                continue
            allowed = (DEFAULT_RESOLVED if row.config is None
                       else ResolvedConfig.from_shown(row.config)).attempts
            events = ROLLBACK if row.kind == "rollback" else FORWARD
            now = self._clock.now_ms()
            with store.transaction():
                store.append(events.attempt_failure, now, row, attempt=row.attempts,
                             data={"error": INTERNAL_ERROR.to_json()})
                if row.attempts >= allowed:
                    store.append(events.step_failure, now, row,
                                 data={"error": INTERNAL_ERROR.to_json()})

    async def _failed(self, row: StepRow, attempt: int, exc: Exception, ctx: StepContext,
                      resolved: ResolvedConfig, events: StepEvents) -> None:
        """Log a failed attempt; raise the step's error if no attempt is left."""
        record = record_error(exc)
        delay = None
        if attempt < resolved.attempts and not record.non_retryable:
            try:
                delay = await self._retry_delay(resolved, attempt, ctx, exc, row.label)
            except _DelayFunctionError as bad:
                record = bad.record
            modifier = self._host.modifier() if events is FORWARD else None
            if delay is not None and modifier is not None and modifier.retry_delay_off(
                    row.name, row.count):
                delay = 0
        data: dict[str, Any] = {"error": self._compat.attempt_error(record).to_json()}
        if delay is not None:
            data["retryDelayMs"] = delay
        with self._store.transaction():
            now = self._clock.now_ms()
            self._store.append(events.attempt_failure, now, row, attempt=attempt, data=data)
            if delay is None:
                self._store.append(events.step_failure, now, row, data={"error": record.to_json()})
        if delay is None:
            raise error_from_record(record) from exc

    async def _retry_delay(self, resolved: ResolvedConfig, attempt: int, ctx: StepContext,
                           exc: BaseException, label: str) -> int:
        """The wait before the next attempt: the (possibly dynamic) base delay, backed off.

        Raises:
            _DelayFunctionError: a delay function threw, hung (5 s) or returned nonsense.
        """
        function = resolved.delay_function
        if function is None:
            return resolved.retry_delay_ms(attempt)
        try:
            got = function({"ctx": ctx, "error": exc})
            if inspect.isawaitable(got):
                got = await asyncio.wait_for(_awaited(got), DELAY_FUNCTION_TIMEOUT_S)
        except TimeoutError as late:
            raise _DelayFunctionError(
                f'The delay function for step "{label}" did not return within '
                f"{DELAY_FUNCTION_TIMEOUT_S:g} seconds") from late
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

    async def _with_timeout(self, started: asyncio.Future[Any], ms: int) -> Any:
        """The result of ``started`` (a callback suspended in its task), or
        `WorkflowTimeoutError` once ``ms`` have passed.

        The limit counts on the clock and, under a virtual clock, in real time too: callbacks
        run in real time, so a slow one times out although virtual time stands still. A
        callback past its limit is not cancelled (Cloudflare's engine never cancels one): it
        runs on, and what it returns is ignored.
        """
        loop = asyncio.get_running_loop()
        limit: asyncio.Future[None] = loop.create_future()

        def expire() -> None:
            if not limit.done():
                limit.set_result(None)

        timers = [self._clock.call_at(self._clock.now_ms() + ms, expire)]
        if self._clock.virtual:
            timers.append(loop.call_later(ms / 1000.0, expire))
        self._callbacks.add(started)
        started.add_done_callback(self._callbacks.discard)
        try:
            await asyncio.wait({started, limit}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            started.cancel()  # the instance stops (pause, terminate, shutdown): so does it
            raise
        finally:
            for timer in timers:
                timer.cancel()
        if started.done():
            return started.result()  # cancelled by a halt: the step stops with it
        self._abandon(started)
        raise WorkflowTimeoutError(f"Execution timed out after {ms}ms")

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        """Let a callback past its timeout run on; its outcome is dropped."""
        self._callbacks.add(task)

    def runs(self, task: asyncio.Future[Any] | None) -> bool:
        """Whether ``task`` is one of this instance's running callbacks."""
        return task is not None and task in self._callbacks

    def cancel_callbacks(self, keep: asyncio.Future[Any] | None = None) -> None:
        """Cancel every callback still running, awaited or past its timeout (a halt), but
        ``keep`` (the callback that asked for the halt)."""
        for task in list(self._callbacks):
            if task is not keep:
                task.cancel()
                self._callbacks.discard(task)

    def _abort_unserialisable(self, row: StepRow, exc: UnserialisableOutput) -> None:
        attempt_err = ErrorRecord(
            "WorkflowFatalError",
            f'Value returned from step "{row.name}" is not serialisable ({exc})')
        now = self._clock.now_ms()
        with self._store.transaction():
            self._store.append(FORWARD.attempt_failure, now, row, attempt=row.attempts,
                               data={"error": attempt_err.to_json()})
            self._store.append(FORWARD.step_failure, now, row,
                               data={"error": attempt_err.to_json()})
        raise FatalAbort(ErrorRecord(
            "WorkflowFatalError",
            "The execution of the Workflow instance was terminated, as the step "
            f'"{row.name}" returned a value which is not serialisable',
        )) from exc


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value
