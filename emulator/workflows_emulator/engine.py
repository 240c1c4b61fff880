"""The engine of one workflow instance: runs ``run()`` durably, step by step, and rolls back.

One `InstanceEngine` exists per instance, over that instance's own Durable-Object stand-in,
as Cloudflare runs one Engine Durable Object per instance. Every transition is an entry of
the instance's log (`InstanceLog`), committed before the next transition begins; after a
crash, ``run()`` is replayed from the top and completed steps return their stored results
without running again.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workflows_saga import RollbackContext, StepContext
from workflows_saga._backend import RollbackOptions, StepCall
from workflows_saga._config import (
    attempts_allowed,
    backoff_delay_ms,
    describe_config,
    resolve_config,
    timeout_ms,
)
from workflows_saga._durations import Duration, duration_ms, parse_duration_ms
from workflows_saga._errors import (
    WorkflowTimeoutError,
    error_from_record,
    error_record,
    is_non_retryable,
)
from workflows_saga._step import WorkflowStep

from .durable_object import DurableObjectStorage
from .errors import InvalidActionError, SleepInThePastError, WorkflowError, WorkflowFatalError
from .events import FORWARD, ROLLBACK, TERMINAL, StepEvents
from .step_log import InstanceLog, StepRow
from .values import (
    UnserialisableOutput,
    decode,
    encode_step_output,
    encode_value,
    event_value,
    validate_event_type,
)

if TYPE_CHECKING:
    from .host import EngineHost

MAX_SLEEP_MS = 365 * 86_400_000
INTERNAL_ERROR = {
    "name": "WorkflowInternalError",
    "message": "Attempt failed due to internal workflows error",
}
TERMINATED_ERROR = {"name": "Terminated", "message": "Instance terminated during rollback"}
# What a Python handler sees of it on Cloudflare: the error crosses RPC as a plain Error,
# which keeps the message but not the custom name (observed under workerd).
TERMINATED_SEEN_BY_HANDLERS = {"name": "Error", "message": TERMINATED_ERROR["message"]}
RESTART_TYPES = {"do": "do", "sleep": "sleep", "waitForEvent": "wait"}

RunFactory = Callable[[], Callable[[dict[str, Any], Any], Awaitable[Any]]]


DELAY_FUNCTION_TIMEOUT_S = 5.0


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


class _DelayFunctionError(Exception):
    """A retry delay function failed: the step fails for good (``NonRetryableDelayError``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.record = {"name": "NonRetryableDelayError", "message": message}


class _FatalAbort(BaseException):
    """Ends the instance at once, with no rollback (an unserialisable step output).

    Internal control flow: do not catch this.
    """

    def __init__(self, record: dict[str, str]) -> None:
        super().__init__(record["message"])
        self.record = record


@dataclass
class RollbackEntry:
    """A registered handler, kept in memory: handlers are code, they are never persisted."""

    row_key: str
    options: RollbackOptions


@dataclass(frozen=True)
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


_DEFAULT_RESOLVED = resolve_config(None)
_DEFAULT_SHOWN = describe_config(_DEFAULT_RESOLVED)
_DEFAULT_SHOWN_TEXT = json.dumps(_DEFAULT_SHOWN)


def _resolve(config: Any) -> dict[str, Any]:
    # The defaults are resolved once: most steps have no config of their own.
    return _DEFAULT_RESOLVED if config is None else resolve_config(config)


def step_key(kind: str, name: str, count: int) -> str:
    """The cache key of the ``count``-th ``kind`` step called ``name``."""
    return f"{kind}:{count}:{name}"


def rollback_order(rows: dict[str, StepRow]) -> list[StepRow]:
    """Steps eligible for rollback, in the order their handlers run: reverse start order."""
    eligible = [r for r in rows.values() if r.kind == "do" and r.has_rollback]
    return sorted(eligible, key=lambda r: r.seq, reverse=True)


class InstanceEngine:
    """Runs one instance. Implements the `workflows_saga` step backend seam."""

    def __init__(self, host: EngineHost, workflow: str, instance_id: str,
                 storage: DurableObjectStorage, make_run: RunFactory,
                 step_limit: int | None = None) -> None:
        self.host = host
        self.workflow = workflow
        self.id = instance_id
        self.storage = storage
        self.clock = host.clock
        self.step_limit = step_limit or host.step_limit
        self._make_run = make_run
        self.log = InstanceLog(storage, self._on_append)
        self.meta: dict[str, Any] = storage.get("meta") or {}
        self._counts: dict[tuple[str, str], int] = {}
        self._next_seq = 0
        self._do_steps = 0
        self._registry: dict[str, RollbackEntry] = {}
        self._busy = 0
        self._replay_only = False
        self._rollback_phase = False
        self._draining = False
        self._driver: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._step_tasks: set[asyncio.Task[Any]] = set()
        self._event_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._load()

    def _on_append(self, entry_id: int, event: str, label: str | None, attempt: int | None,
                   data: dict[str, Any] | None, ts: float) -> None:
        self.host.logged(self, entry_id, event, label, attempt, data, ts)

    @property
    def rows(self) -> dict[str, StepRow]:
        return self.log.rows

    # == lifecycle (called by the emulator's instance handle) ===================================

    def create(self, params: Any, now: float) -> None:
        """Persist a new instance as ``queued``."""
        self.storage.delete_all()
        self.meta = {
            "id": self.id, "workflow": self.workflow, "params": params, "status": "queued",
            "error": None, "output": None, "rollback": None, "phase": "forward",
            "created": now, "started": None, "ended": None, "trigger": None,
            "terminating": False, "pause_requested": False, "paused_at": None,
        }
        with self.log.transaction():
            self.storage.put("meta", self.meta)
            self.log.append("WORKFLOW_QUEUED", now)
        self._load()

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "unknown"))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def running(self) -> bool:
        return self._driver is not None and not self._driver.done()

    def start(self) -> None:
        """Drive this instance (again, after a stop or a restart of the process)."""
        if self.terminal or self.status == "paused" or self.running:
            return
        self._driver = asyncio.get_running_loop().create_task(
            self._drive(), name=f"workflow:{self.workflow}:{self.id}")

    async def halt(self, reason: str = "shutdown") -> None:
        """Stop driving at once, leaving the persisted state as it is (as a crash would)."""
        driver = self._driver
        if driver is None or driver.done():
            return
        self._stop_reason = reason
        if driver is not asyncio.current_task():
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)
        self._stop_reason = None
        self._cancel_step_tasks()

    async def drain(self, timeout: float) -> None:
        """Stop driving once running callbacks finish (or after ``timeout`` real seconds).

        No new attempt starts meanwhile: each parks at its checkpoint until the halt.
        """
        self._draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._busy and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await self.halt("shutdown")

    async def pause(self) -> None:
        if self.status in ("paused", "waitingForPause"):
            return  # already pausing: nothing to do, as on Cloudflare
        if self.status not in ("queued", "running", "waiting"):
            raise InvalidActionError(
                f"(instance.cannot_pause) Cannot pause instance {self.id}: it is {self.status}")
        if self._busy == 0:
            await self.halt("pause")
            self._set_paused()
        else:
            with self.log.transaction():
                self._set_meta(status="waitingForPause", pause_requested=True)

    def _set_paused(self) -> None:
        now = self.clock.now_ms()
        with self.log.transaction():
            self._set_meta(status="paused", pause_requested=False, paused_at=now)
            self.log.append("WORKFLOW_PAUSED", now)

    async def resume(self) -> None:
        if self.status == "waitingForPause":
            with self.log.transaction():
                self._set_meta(status="running", pause_requested=False)
            return
        if self.status != "paused":
            raise InvalidActionError(
                f"(instance.cannot_resume) Cannot resume instance {self.id}: it is "
                f"{self.status}, not paused")
        now = self.clock.now_ms()
        with self.log.transaction():
            # Timers keep their remaining time: every pending wake-up moves by the pause.
            self.log.append("WORKFLOW_RESUMED", now,
                            data={"shiftMs": now - (self.meta.get("paused_at") or now)})
            self._set_meta(status="queued", paused_at=None)
        self.start()

    async def terminate(self, rollback: bool = False) -> None:
        if self.terminal:
            raise InvalidActionError(
                "(instance.cannot_terminate) Cannot terminate instance since its on a "
                "finite state")
        await self.halt("terminate")
        if not rollback:
            self._finish("terminated", event="WORKFLOW_TERMINATED")
            return
        with self.log.transaction():
            self._set_meta(phase="rollback", trigger=TERMINATED_ERROR, terminating=True,
                           status="running", pause_requested=False)
        # Handlers registered by this process's run stay; replay rebuilds them only when the
        # registry is empty (after a restart of the process), as Cloudflare's engine does.
        self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def restart(self, from_step: dict[str, Any] | None = None) -> None:
        forget: set[str] | None = None
        if from_step is not None:
            kind = RESTART_TYPES.get(from_step.get("type", "do"))
            if kind is None:
                raise InvalidActionError(
                    "(instance.cannot_restart) from.type must be one of do, sleep, waitForEvent")
            target = self.rows.get(step_key(kind, from_step["name"],
                                            int(from_step.get("count", 1))))
            if target is None:
                raise InvalidActionError(
                    f'(instance.cannot_restart) Step "{from_step["name"]}" not found in '
                    "execution history")
            forget = {r.key for r in self.rows.values()
                      if r.kind == "rollback" or r.seq >= target.seq}
        await self.halt("restart")
        now = self.clock.now_ms()
        with self.log.transaction():
            self.log.forget(forget)
            self._set_meta(status="queued", error=None, output=None, rollback=None,
                           phase="forward", trigger=None, terminating=False, ended=None,
                           pause_requested=False, paused_at=None, rollback_started=False)
            self.log.append("WORKFLOW_RESTARTED", now, data={"from": from_step})
        self._load()
        self._registry.clear()
        self.start()

    def send_event(self, event_type: str, payload: Any) -> None:
        if self.terminal:
            raise WorkflowError(
                f"(instance.not_running) Cannot send an event to instance {self.id}: it is "
                f"{self.status}")
        validate_event_type(event_type)
        encoded = encode_value(payload, what="event payload")
        now = self.clock.now_ms()
        with self.log.transaction():
            self.storage.sql.exec("INSERT INTO inbox (type, payload, ts) VALUES (?, ?, ?)",
                                  event_type, encoded, now)
            self.log.append("EVENT_RECEIVED", now, data={"eventType": event_type})
        for waiter in self._event_waiters.pop(event_type, []):
            if not waiter.done():
                waiter.set_result(None)

    # == the driver ===============================================================================

    async def _drive(self) -> None:
        try:
            if not self.meta.get("terminating"):  # a terminate rollback needs no slot
                await self.host.acquire_slot(self)
            self._load()
            self._recover_open_attempts()
            if self.meta.get("phase") == "rollback":
                await self._finish_rollback()
                return
            with self.log.transaction():
                first = self.meta.get("started") is None
                self._set_meta(status="running", started=self.meta.get("started")
                               or self.clock.now_ms())
                if first:
                    self.log.append("WORKFLOW_START", self.clock.now_ms())
            try:
                output = await self._run_user_code()
                encoded = encode_value(output, what="workflow output")
            except _FatalAbort as abort:
                self._finish("errored", error=abort.record, event="WORKFLOW_FAILURE")
                return
            except Exception as exc:  # an error escaping run(): terminal failure
                await self._fail(exc)
                return
            self._finish("complete", output=json.loads(encoded), event="WORKFLOW_SUCCESS")
        except asyncio.CancelledError:
            if self._stop_reason is None:
                raise
        finally:
            self.host.release_slot(self)
            self.host.activity()

    async def _run_user_code(self) -> Any:
        self._counts.clear()
        run = self._make_run()
        event = {
            "payload": self.meta.get("params"),
            "timestamp": datetime.fromtimestamp(self.meta["created"] / 1000.0),
            "instanceId": self.id,
            "workflowName": self.workflow,
        }
        return await run(event, WorkflowStep(self))

    async def _fail(self, exc: BaseException) -> None:
        trigger = error_record(exc)
        self._cancel_step_tasks()
        with self.log.transaction():
            self._set_meta(phase="rollback", trigger=trigger)
        outcome = await self._rollback(trigger)
        self._finish("errored", error=trigger, rollback=outcome, event="WORKFLOW_FAILURE")

    async def _finish_rollback(self) -> None:
        """Run (or carry on) the rollback phase, rebuilding handlers by replaying ``run()``."""
        trigger = self.meta["trigger"]
        if not self._registry:
            self._replay_only = True
            try:
                await self._run_user_code()
            except Exception:
                pass
            finally:
                self._replay_only = False
        outcome = await self._rollback(trigger)
        if self.meta.get("terminating"):
            self._finish("terminated", rollback=outcome, event="WORKFLOW_TERMINATED")
        else:
            self._finish("errored", error=trigger, rollback=outcome, event="WORKFLOW_FAILURE")

    def _finish(self, status: str, *, event: str, error: Any = None, output: Any = None,
                rollback: Any = None) -> None:
        now = self.clock.now_ms()
        data: dict[str, Any] = {}
        if error is not None:
            data["error"] = error
        if status == "complete":
            data["output"] = output
        with self.log.transaction():
            self._set_meta(status=status, error=error, output=output, rollback=rollback,
                           ended=now, phase="done", pause_requested=False)
            self.log.append(event, now, data=data or None)
            self.storage.delete_alarm()

    # == the step backend seam ==================================================================

    async def do(self, call: StepCall) -> Any:
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
        resolved = _resolve(call.config)
        start: PlannedStep | None = None
        if row is None:
            if self._do_steps >= self.step_limit:
                raise WorkflowFatalError(
                    f"The limit of {self.step_limit} steps has been reached. This limit can be "
                    "changed in your worker configuration.")
            self._do_steps += 1
            shown = _DEFAULT_SHOWN if resolved is _DEFAULT_RESOLVED else describe_config(resolved)
            start = PlannedStep(key, "do", call.name, count, self._take_seq(), shown,
                                has_rollback=call.rollback is not None)
        else:
            stored = json.loads(row.config or "null")
            if stored is not None:  # the persisted config wins on replay (a delay function stays)
                delay = resolved["retries"]["delay"]
                resolved = {**stored, "retries": {**stored["retries"]}}
                if callable(delay):
                    resolved["retries"]["delay"] = delay
        self._register(key, start.has_rollback if start is not None else bool(row and row.has_rollback), call)
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
            planned = PlannedStep(key, "sleep", name, count, self._take_seq(), None)
            with self.log.transaction():
                row = self.log.append("SLEEP_START", now, key=key, label=planned.label,
                                      data={**planned.start_data(), "until": wake_at(now)})
            assert row is not None
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
            planned = PlannedStep(key, "wait", name, count, self._take_seq(),
                                  {"type": event_type, "timeout": ms})
            with self.log.transaction():
                row = self.log.append("WAIT_START", now, key=key, label=planned.label,
                                      data={**planned.start_data(), "until": now + ms})
            assert row is not None
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

    # == attempts, shared by forward steps and rollback handlers ==================================

    async def _attempts(
        self,
        row: StepRow | None,
        start: PlannedStep | None,
        invoke: Callable[[StepContext], Awaitable[Any]],
        resolved: dict[str, Any],
        events: StepEvents,
    ) -> Any:
        """Run attempts until one succeeds or none is left; every transition is committed."""
        allowed = attempts_allowed(resolved)
        shown_config = _DEFAULT_SHOWN if resolved is _DEFAULT_RESOLVED else describe_config(resolved)
        limit_ms = timeout_ms(resolved)
        while True:
            if row is not None and row.wake_at is not None and row.wake_at > self.clock.now_ms():
                await self._park_until(row.wake_at)
            await self._checkpoint()
            now = self.clock.now_ms()
            with self.log.transaction():
                if row is None:
                    assert start is not None
                    texts = {"config": _DEFAULT_SHOWN_TEXT} if start.config is _DEFAULT_SHOWN else None
                    row = self.log.append(events.step_start, now, key=start.key,
                                          label=start.label, data=start.start_data(), texts=texts)
                    assert row is not None
                attempt = row.attempts + 1
                self.log.append(events.attempt_start, now, row, attempt=attempt)
            ctx = StepContext.build(row.name, row.count, attempt, shown_config)
            self._busy += 1
            self.host.busy_changed(+1)
            try:
                value = await self._with_timeout(invoke(ctx), limit_ms)
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
                                texts={"output": encoded})
            return output

    async def _retry_delay(self, resolved: dict[str, Any], attempt: int, ctx: StepContext,
                           exc: BaseException, label: str) -> int:
        """The wait before the next attempt: the (possibly dynamic) base delay, backed off.

        Raises:
            _DelayFunctionError: a delay function threw, hung (5 s) or returned nonsense.
        """
        delay = resolved["retries"]["delay"]
        if callable(delay):
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
            return backoff_delay_ms(resolved, attempt, base)
        return backoff_delay_ms(resolved, attempt, parse_duration_ms(delay) or 0.0)

    async def _with_timeout(self, awaitable: Awaitable[Any], ms: int) -> Any:
        task = asyncio.current_task()
        assert task is not None
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
        raise _FatalAbort({
            "name": "WorkflowFatalError",
            "message": "The execution of the Workflow instance was terminated, as the step "
            f'"{row.name}" returned a value which is not serialisable',
        }) from exc

    # == rollback =================================================================================

    def _register(self, key: str, has_rollback: int | bool, call: StepCall) -> None:
        if call.rollback is not None and has_rollback:
            self._registry[key] = RollbackEntry(key, call.rollback)

    async def _rollback(self, trigger: dict[str, str]) -> dict[str, Any] | None:
        """Run every eligible handler, newest-started first; halt at the first that fails."""
        eligible = rollback_order(self.rows)
        if not eligible:
            return None
        if not self.meta.get("rollback_started"):
            with self.log.transaction():
                self._set_meta(rollback_started=True)
                self.log.append("ROLLBACK_START", self.clock.now_ms(),
                                data={"triggerError": trigger, "totalSteps": len(eligible)})
        error = error_from_record(
            TERMINATED_SEEN_BY_HANDLERS if trigger == TERMINATED_ERROR else trigger)
        completed, failure = 0, None
        self._rollback_phase = True
        try:
            for fwd in eligible:
                rkey = f"rollback:{fwd.key}"
                done = self.rows.get(rkey)
                if done is not None and done.state == "success":
                    completed += 1
                    continue
                if done is not None and done.state == "failure":
                    failure = json.loads(done.error or "{}")
                    break
                entry = self._registry.get(fwd.key)
                if entry is None:
                    failure = {"name": "RollbackMissing",
                               "message": "Rollback function not available in registry"}
                    planned = PlannedStep(rkey, "rollback", fwd.label, 1, -1, None)
                    with self.log.transaction():
                        self.log.append(ROLLBACK.step_failure, self.clock.now_ms(), key=rkey,
                                        label=fwd.label,
                                        data={**planned.start_data(), "error": failure})
                    break
                resolved = _resolve(entry.options.config)
                planned = PlannedStep(rkey, "rollback", fwd.label, 1, -1,
                                      describe_config(resolved))
                handler_input = RollbackContext(
                    output=decode(fwd.output) if fwd.state == "success" else None,
                    error=error,
                    ctx=StepContext.build(fwd.name, fwd.count, max(fwd.attempts, 1),
                                          json.loads(fwd.config or "{}")),
                    step_name=fwd.label,
                )

                async def invoke(_: StepContext, h: Any = entry.options.handler,
                                 rb: RollbackContext[Any] = handler_input) -> None:
                    await h(rb)

                try:
                    await self._attempts(done, planned if done is None else None, invoke,
                                         resolved, ROLLBACK)
                except Exception:
                    failure = json.loads(self.rows[rkey].error or "{}")
                    break
                completed += 1
        finally:
            self._rollback_phase = False
        outcome = {"outcome": "failed" if failure else "complete", "error": failure}
        with self.log.transaction():
            self.log.append("ROLLBACK_FAILED" if failure else "ROLLBACK_COMPLETE",
                            self.clock.now_ms(),
                            data={"totalSteps": len(eligible), "completedSteps": completed})
        return outcome

    # == waiting, pausing, stopping ===============================================================

    async def _park_until(self, at: float, also: asyncio.Future[None] | None = None) -> None:
        """Wait for a timer (and maybe an event) as ``waiting``, with the alarm set."""
        if at <= self.clock.now_ms() and also is None:
            return
        with self.log.transaction():
            self.storage.set_alarm(at)
            # During rollback the status stays "running", as documented.
            if self._busy == 0 and self.status == "running" and not self._rollback_phase:
                self._set_meta(status="waiting")
        self.host.release_slot(self)
        self.host.activity()
        sleeper = asyncio.ensure_future(self.clock.sleep_until(at))
        try:
            waiters: set[asyncio.Future[Any]] = {sleeper} if also is None else {sleeper, also}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        await self.host.acquire_slot(self, waking=True)
        if self.status in ("waiting", "queued"):
            with self.log.transaction():
                self._set_meta(status="running")
                self.storage.delete_alarm()

    def _refuse_during_terminate_rollback(self) -> None:
        if self._rollback_phase and self.meta.get("terminating"):
            raise WorkflowFatalError("Cannot execute steps during rollback phase")

    async def _checkpoint(self) -> None:
        """Where a stop asked for meanwhile (pause, terminate, shutdown) takes effect."""
        if self._draining:
            await asyncio.get_running_loop().create_future()  # until halt() cancels it
        if self._stop_reason is not None:
            await asyncio.sleep(0)

    def _after_callback(self) -> None:
        self.host.activity()
        if self._busy == 0 and self.meta.get("pause_requested") and self._driver is not None:
            self._stop_reason = "pause"
            self._driver.cancel()
            asyncio.get_running_loop().call_soon(self._paused_after_stop)

    def _paused_after_stop(self) -> None:
        if self._driver is not None and not self._driver.done():
            asyncio.get_running_loop().call_soon(self._paused_after_stop)
            return
        self._stop_reason = None
        self._cancel_step_tasks()
        if self.meta.get("pause_requested"):
            self._set_paused()
        self.host.activity()

    def _cancel_step_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self._step_tasks):
            if task is not current and task is not self._driver:
                task.cancel()
        self._step_tasks.clear()

    # == bookkeeping ==============================================================================

    def _load(self) -> None:
        rows = self.log.load()
        seqs = [r.seq for r in rows.values() if r.kind != "rollback"]
        self._next_seq = max(seqs) + 1 if seqs else 0
        self._do_steps = sum(1 for r in rows.values() if r.kind == "do")

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _recover_open_attempts(self) -> None:
        """An attempt in flight when the process died counts as failed, and is retried."""
        for row in list(self.rows.values()):
            if row.state != "running" or not row.attempt_open:
                continue
            config = json.loads(row.config or "null") or resolve_config(None)
            events = ROLLBACK if row.kind == "rollback" else FORWARD
            # Retried at once (no backoff), as Cloudflare's engine does, within the limit.
            data: dict[str, Any] = {"error": INTERNAL_ERROR}
            retry = row.attempts < attempts_allowed(config)
            now = self.clock.now_ms()
            with self.log.transaction():
                self.log.append(events.attempt_failure, now, row, attempt=row.attempts, data=data)
                if not retry:
                    self.log.append(events.step_failure, now, row, data={"error": INTERNAL_ERROR})

    def _next_count(self, kind: str, name: str) -> int:
        count = self._counts.get((kind, name), 0) + 1
        self._counts[(kind, name)] = count
        return count

    def _set_meta(self, **changes: Any) -> None:
        old_status = self.meta.get("status")
        self.meta.update(changes)
        self.storage.put("meta", self.meta)
        if self.meta.get("status") != old_status:
            self.host.status_changed(self)

    # == reading ==================================================================================

    def status_dict(self) -> dict[str, Any]:
        """``{"status", "error", "output", "rollback"}``, as ``instance.status()`` returns it."""
        return {"status": self.status, "error": self.meta.get("error"),
                "output": self.meta.get("output"), "rollback": self.meta.get("rollback")}

    def log_entries(self, after: int = 0) -> list[dict[str, Any]]:
        """The instance's event log, oldest first."""
        return self.log.entries(after)

    def step_rows(self) -> list[StepRow]:
        """Every step, forward and rollback, in start order (handlers after forward steps)."""
        rows = list(self.rows.values())
        return sorted(rows, key=lambda r: (r.kind == "rollback", r.seq, r.started_at or 0))
