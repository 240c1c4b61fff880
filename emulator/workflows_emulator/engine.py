"""The engine of one workflow instance: runs ``run()`` durably, step by step, and rolls back.

One `InstanceEngine` exists per instance, over that instance's own Durable-Object stand-in,
as Cloudflare runs one Engine Durable Object per instance. Every transition is committed
before the next begins; after a crash, ``run()`` is replayed from the top and completed
steps return their stored results without running again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workflows_saga import NonRetryableError, RollbackContext, StepContext
from workflows_saga._backend import RollbackOptions, StepCall
from workflows_saga._config import (
    attempts_allowed,
    backoff_delay_ms,
    describe_config,
    parse_step_config,
    resolve_config,
    timeout_ms,
)
from workflows_saga._durations import Duration, duration_ms, parse_duration_ms
from workflows_saga._errors import WorkflowTimeoutError, error_from_record, error_record
from workflows_saga._step import WorkflowStep

from .durable_object import DurableObjectStorage
from .errors import InvalidActionError, WorkflowError
from .events import FORWARD, ROLLBACK, TERMINAL, StepEvents

if TYPE_CHECKING:
    from .host import EngineHost

MAX_OUTPUT_BYTES = 1 << 20
MAX_SLEEP_MS = 365 * 86_400_000
EVENT_TYPE_MAX = 100
INTERNAL_ERROR = {
    "name": "WorkflowInternalError",
    "message": "Attempt failed due to internal workflows error",
}
TERMINATED_ERROR = {"name": "Terminated", "message": "Instance terminated during rollback"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL,
    seq INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    attempt_open INTEGER NOT NULL DEFAULT 0, config TEXT, output TEXT, error TEXT,
    has_rollback INTEGER NOT NULL DEFAULT 0, started_at REAL, ended_at REAL, wake_at REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, event TEXT NOT NULL, step TEXT,
    attempt INTEGER, data TEXT
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, payload TEXT NOT NULL, ts REAL NOT NULL
);
"""
_STEP_COLUMNS = (
    "key", "kind", "name", "count", "seq", "state", "attempts", "attempt_open", "config",
    "output", "error", "has_rollback", "started_at", "ended_at", "wake_at",
)


class _FatalAbort(BaseException):
    """Ends the instance at once, with no rollback (an unserialisable step output).

    Internal control flow: do not catch this.
    """

    def __init__(self, record: dict[str, str]) -> None:
        super().__init__(record["message"])
        self.record = record


@dataclass
class StepRow:
    """One persisted step (a ``do``, ``sleep``, ``wait`` or ``rollback``)."""

    key: str
    kind: str
    name: str
    count: int
    seq: int
    state: str = "running"
    attempts: int = 0
    attempt_open: int = 0
    config: str | None = None
    output: str | None = None
    error: str | None = None
    has_rollback: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    wake_at: float | None = None

    @property
    def label(self) -> str:
        """``"<name>-<count>"``, as Workflows shows steps."""
        return self.name if self.kind == "rollback" else f"{self.name}-{self.count}"


@dataclass
class RollbackEntry:
    """A registered handler: what is needed to call it when rollback comes."""

    row_key: str
    options: RollbackOptions
    ctx: StepContext


def step_key(kind: str, name: str, count: int) -> str:
    """The cache key of the ``count``-th ``kind`` step called ``name``."""
    return f"{kind}:{count}:{name}"


class InstanceEngine:
    """Runs one instance. Implements the `workflows_saga` step backend seam."""

    def __init__(
        self,
        host: EngineHost,
        workflow: str,
        instance_id: str,
        storage: DurableObjectStorage,
        make_run: Callable[[], Callable[[dict[str, Any], Any], Awaitable[Any]]],
    ) -> None:
        self.host = host
        self.workflow = workflow
        self.id = instance_id
        self.storage = storage
        self._make_run = make_run
        self.clock = host.clock
        storage.sql._conn.executescript(_SCHEMA)
        self.meta: dict[str, Any] = storage.get("meta") or {}
        self._rows: dict[str, StepRow] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._next_seq = 0
        self._registry: dict[str, RollbackEntry] = {}
        self._busy = 0
        self._replay_only = False
        self._rollback_phase = False
        self._driver: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._step_tasks: set[asyncio.Task[Any]] = set()
        self._event_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.changed = asyncio.Event()
        self._in_tx = False
        self._pending_log: list[tuple[Any, ...]] = []
        self._next_log_id = 0
        self._other_steps = 0

    # == lifecycle entry points (called by the emulator's instance handle) =================

    def create(self, params: Any, now: float) -> None:
        """Persist a new instance as ``queued``."""
        self.storage.delete_all()
        self.meta = {
            "id": self.id, "workflow": self.workflow, "params": params, "status": "queued",
            "error": None, "output": None, "rollback": None, "phase": "forward",
            "created": now, "started": None, "ended": None, "trigger": None,
            "terminating": False, "pause_requested": False, "paused_at": None,
        }
        with self._tx():
            self.storage.put("meta", self.meta)
            self._log("WORKFLOW_QUEUED")

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "unknown"))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def start(self) -> None:
        """Start (or resume after a restart of the process) driving this instance."""
        if self.terminal or self.status == "paused" or self.running:
            return
        self._driver = asyncio.get_running_loop().create_task(
            self._drive(), name=f"workflow:{self.workflow}:{self.id}"
        )

    @property
    def running(self) -> bool:
        return self._driver is not None and not self._driver.done()

    async def halt(self, reason: str = "shutdown") -> None:
        """Stop driving, leaving the persisted state as it is (as a crash would)."""
        driver = self._driver
        if driver is None or driver.done():
            return
        self._stop_reason = reason
        if driver is not asyncio.current_task():
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)
        self._stop_reason = None
        self._cancel_step_tasks()

    async def pause(self) -> None:
        if self.status not in ("queued", "running", "waiting"):
            raise InvalidActionError(
                f"(instance.cannot_pause) Cannot pause instance {self.id}: it is {self.status}"
            )
        if self._busy == 0:
            await self.halt("pause")
            self._set_paused()
        else:
            with self._tx():
                self._set_meta(status="waitingForPause", pause_requested=True)

    def _set_paused(self) -> None:
        with self._tx():
            self._set_meta(status="paused", pause_requested=False, paused_at=self.clock.now_ms())
            self._log("WORKFLOW_PAUSED")

    async def resume(self) -> None:
        if self.status == "waitingForPause":
            with self._tx():
                self._set_meta(status="running", pause_requested=False)
            return
        if self.status != "paused":
            raise InvalidActionError(
                f"(instance.cannot_resume) Cannot resume instance {self.id}: it is "
                f"{self.status}, not paused"
            )
        paused_for = self.clock.now_ms() - (self.meta.get("paused_at") or self.clock.now_ms())
        with self._tx():
            # Timers keep their remaining time: push every pending wake-up by the pause.
            self.storage.sql.exec(
                "UPDATE steps SET wake_at = wake_at + ? WHERE state = 'running' "
                "AND wake_at IS NOT NULL",
                paused_for,
            )
            self._set_meta(status="queued", paused_at=None)
            self._log("WORKFLOW_RESUMED")
        self.start()

    async def terminate(self, rollback: bool = False) -> None:
        if self.terminal:
            raise InvalidActionError(
                "(instance.cannot_terminate) Cannot terminate instance since its on a "
                "finite state"
            )
        await self.halt("terminate")
        if not rollback:
            self._finish("terminated", event="WORKFLOW_TERMINATED")
            return
        with self._tx():
            self._set_meta(phase="rollback", trigger=TERMINATED_ERROR, terminating=True,
                           status="running", pause_requested=False)
        self._registry.clear()
        self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def restart(self, from_step: dict[str, Any] | None = None) -> None:
        await self.halt("restart")
        self._load_rows()
        if from_step is None:
            keep: list[StepRow] = []
        else:
            kind = {"do": "do", "sleep": "sleep", "waitForEvent": "wait"}.get(
                from_step.get("type", "do"), from_step.get("type", "do")
            )
            key = step_key(kind, from_step["name"], int(from_step.get("count", 1)))
            target = self._rows.get(key)
            if target is None:
                raise InvalidActionError(
                    f'(instance.cannot_restart) Step "{from_step["name"]}" not found in '
                    "execution history"
                )
            keep = [r for r in self._rows.values() if r.kind != "rollback" and r.seq < target.seq]
        with self._tx():
            self.storage.sql.exec("DELETE FROM steps")
            if from_step is None:
                self.storage.sql.exec("DELETE FROM log")
                self.storage.sql.exec("DELETE FROM inbox")
            for row in keep:
                self._write_row(row, insert=True)
            self._set_meta(status="queued", error=None, output=None, rollback=None,
                           phase="forward", trigger=None, terminating=False, ended=None,
                           pause_requested=False, paused_at=None)
            self._log("WORKFLOW_RESTARTED", data={"from": from_step})
        self._registry.clear()
        self.start()

    def send_event(self, event_type: str, payload: Any) -> None:
        if self.terminal:
            raise WorkflowError(
                f"(instance.not_running) Cannot send an event to instance {self.id}: it is "
                f"{self.status}"
            )
        validate_event_type(event_type)
        encoded = _encode(payload, what="event payload")
        with self._tx():
            self.storage.sql.exec(
                "INSERT INTO inbox (type, payload, ts) VALUES (?, ?, ?)",
                event_type, encoded, self.clock.now_ms(),
            )
            self._log("EVENT_RECEIVED", data={"eventType": event_type})
        for waiter in self._event_waiters.pop(event_type, []):
            if not waiter.done():
                waiter.set_result(None)

    # == the driver ===========================================================================

    async def _drive(self) -> None:
        try:
            await self.host.acquire_slot(self)
            self._load_rows()
            self._recover_open_attempts()
            if self.meta.get("phase") == "rollback":
                await self._finish_rollback()
                return
            with self._tx():
                first = self.meta.get("started") is None
                self._set_meta(status="running", started=self.meta.get("started") or
                               self.clock.now_ms())
                if first:
                    self._log("WORKFLOW_START")
            try:
                output = await self._run_user_code()
            except _FatalAbort as abort:
                self._finish("errored", error=abort.record, event="WORKFLOW_FAILURE")
                return
            except Exception as exc:  # an error escaping run(): terminal failure
                await self._fail(exc)
                return
            try:
                encoded = _encode(output, what="workflow output")
            except WorkflowError as exc:
                await self._fail(exc)
                return
            self._finish("complete", output=json.loads(encoded), event="WORKFLOW_SUCCESS")
        except asyncio.CancelledError:
            if self._stop_reason is None:
                raise
        finally:
            self.host.release_slot(self)
            self._wake_watchers()

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
        with self._tx():
            self._set_meta(phase="rollback", trigger=trigger)
        outcome = await self._rollback(trigger)
        self._finish("errored", error=trigger, rollback=outcome, event="WORKFLOW_FAILURE")

    async def _finish_rollback(self) -> None:
        """Run (or carry on) the rollback phase, rebuilding handlers by replaying ``run()``."""
        trigger = self.meta["trigger"]
        if not self._registry:
            await self._replay_for_handlers()
        outcome = await self._rollback(trigger)
        if self.meta.get("terminating"):
            self._finish("terminated", rollback=outcome, event="WORKFLOW_TERMINATED")
        else:
            self._finish("errored", error=trigger, rollback=outcome, event="WORKFLOW_FAILURE")

    async def _replay_for_handlers(self) -> None:
        self._replay_only = True
        try:
            await self._run_user_code()
        except Exception:
            pass
        finally:
            self._replay_only = False

    def _finish(self, status: str, *, event: str, error: Any = None, output: Any = None,
                rollback: Any = None) -> None:
        with self._tx():
            self._set_meta(status=status, error=error, output=output, rollback=rollback,
                           ended=self.clock.now_ms(), phase="done", pause_requested=False)
            data: dict[str, Any] = {}
            if error is not None:
                data["error"] = error
            if status == "complete":
                data["output"] = output
            self._log(event, data=data or None)
            self.storage.delete_alarm()

    # == the step backend seam ===============================================================

    async def do(self, call: StepCall) -> Any:
        await self._checkpoint()
        if self._rollback_phase and self.meta.get("terminating"):
            raise WorkflowError("Cannot execute steps during rollback phase")
        count = self._next_count("do", call.name)
        key = step_key("do", call.name, count)
        row = self._rows.get(key)
        if row is not None and row.state != "running":
            self._register(row, call)
            if row.state == "success":
                return _decode(row.output)
            raise error_from_record(json.loads(row.error or "{}"))
        if self._replay_only:
            if row is not None:
                self._register(row, call)
            return None
        resolved = resolve_config(call.config)
        if row is None:
            if self._next_seq >= self.host.step_limit + self._non_do_steps():
                raise WorkflowError(
                    f"The limit of {self.host.step_limit} steps has been reached. This limit "
                    "can be changed in your worker configuration."
                )
            row = self._new_row("do", call.name, count, key, describe_config(resolved))
            row.has_rollback = int(call.rollback is not None)
        elif call.config is None or not callable((call.config.retries or _NO).delay):
            resolved = json.loads(row.config or "{}") or resolved
        entry = self._register(row, call)
        task = asyncio.current_task()
        if task is not None:
            self._step_tasks.add(task)
        try:
            return await self._attempts(row, call.callback, resolved, FORWARD, entry)
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
                raise WorkflowError("You can't sleep until a time in the past, time-traveler")
            return at

        await self._sleep(name, wake)

    async def _sleep(self, name: str, wake_at: Callable[[float], float]) -> None:
        await self._checkpoint()
        count = self._next_count("sleep", name)
        key = step_key("sleep", name, count)
        row = self._rows.get(key)
        if (row is not None and row.state == "success") or self._replay_only:
            return
        if row is None:
            at = wake_at(self.clock.now_ms())
            row = self._new_row("sleep", name, count, key, None, wake=at, event="SLEEP_START")
        await self._park_until(row.wake_at or 0.0)
        with self._tx():
            row.state, row.ended_at = "success", self.clock.now_ms()
            self._write_row(row)
            self._log("SLEEP_COMPLETE", row.label)

    async def wait_for_event(self, name: str, event_type: str, timeout: Duration) -> dict[str, Any]:
        validate_event_type(event_type)
        ms = parse_duration_ms(timeout)
        if ms is None or ms < 1000 or ms > MAX_SLEEP_MS:
            raise WorkflowError(
                f'waitForEvent "{name}": timeout must be between 1 second and 365 days'
            )
        await self._checkpoint()
        count = self._next_count("wait", name)
        key = step_key("wait", name, count)
        row = self._rows.get(key)
        if row is not None and row.state == "success":
            return _event_value(_decode(row.output))
        if row is not None and row.state == "failure":
            raise error_from_record(json.loads(row.error or "{}"))
        if self._replay_only:
            return None  # type: ignore[return-value]
        if row is None:
            row = self._new_row("wait", name, count, key, {"type": event_type, "timeout": ms},
                                wake=self.clock.now_ms() + ms, event="WAIT_START")
        while True:
            got = self.storage.sql.exec(
                "SELECT id, payload, ts FROM inbox WHERE type = ? ORDER BY id LIMIT 1", event_type
            ).first()
            if got is not None:
                value = {"payload": json.loads(got["payload"]), "timestamp": got["ts"],
                         "type": event_type}
                with self._tx():
                    self.storage.sql.exec("DELETE FROM inbox WHERE id = ?", got["id"])
                    row.state, row.output, row.ended_at = "success", json.dumps(value), \
                        self.clock.now_ms()
                    row.wake_at = None
                    self._write_row(row)
                    self._log("WAIT_COMPLETE", row.label, data={"eventType": event_type})
                return _event_value(value)
            if row.wake_at is not None and self.clock.now_ms() >= row.wake_at:
                err = {"name": "WorkflowTimeoutError",
                       "message": f"Execution timed out after {int(ms)}ms"}
                with self._tx():
                    row.state, row.error, row.ended_at = "failure", json.dumps(err), \
                        self.clock.now_ms()
                    self._write_row(row)
                    self._log("WAIT_TIMEOUT", row.label, data={"error": err})
                raise WorkflowTimeoutError(err["message"])
            waiter = asyncio.get_running_loop().create_future()
            self._event_waiters.setdefault(event_type, []).append(waiter)
            await self._park_until(row.wake_at or 0.0, also=waiter)

    # == attempts, shared by forward steps and rollback handlers ================================

    async def _attempts(
        self,
        row: StepRow,
        invoke: Callable[[StepContext], Awaitable[Any]],
        resolved: dict[str, Any],
        events: StepEvents,
        entry: RollbackEntry | None = None,
    ) -> Any:
        allowed = attempts_allowed(resolved)
        shown_config = describe_config(resolved)
        ctx_name, ctx_count = row.name, row.count
        while True:
            if row.wake_at is not None and row.wake_at > self.clock.now_ms():
                await self._park_until(row.wake_at)
            await self._checkpoint()
            attempt = row.attempts + 1
            with self._tx():
                if attempt == 1:
                    extra = {"hasRollback": True} if row.has_rollback else None
                    self._log(events.step_start, row.label, data=extra)
                insert = row.attempt_open == -1
                row.attempts, row.attempt_open, row.wake_at = attempt, 1, None
                self._write_row(row, insert=insert)
                self._log(events.attempt_start, row.label, attempt)
            ctx = StepContext.build(ctx_name, ctx_count, attempt, shown_config)
            if entry is not None:
                entry.ctx = ctx
            self._busy += 1
            self.host.busy_changed(+1)
            try:
                value = await self._with_timeout(invoke(ctx), timeout_ms(resolved))
                encoded = _encode(value, what=f'step "{row.label}" output', step=row.label)
            except (Exception, WorkflowTimeoutError) as exc:
                if isinstance(exc, _Unserialisable):
                    await self._abort_unserialisable(row, exc)
                record = error_record(exc)
                retry = attempt < allowed and not isinstance(exc, NonRetryableError) and (
                    record["name"] != "WorkflowInternalError"
                )
                delay = await self._retry_delay(resolved, attempt, ctx, exc) if retry else None
                if delay is None:
                    retry = False
                with self._tx():
                    row.attempt_open = 0
                    data: dict[str, Any] = {"error": record}
                    if retry:
                        data["retryDelayMs"] = delay
                        row.wake_at = self.clock.now_ms() + (delay or 0)
                    else:
                        row.state, row.error, row.ended_at = "failure", json.dumps(record), \
                            self.clock.now_ms()
                    self._write_row(row)
                    self._log(events.attempt_failure, row.label, attempt, data)
                    if not retry:
                        self._log(events.step_failure, row.label, data={"error": record})
                if not retry:
                    raise error_from_record(record) from exc
                continue
            finally:
                self._busy -= 1
                self.host.busy_changed(-1)
                self._after_callback()
            with self._tx():
                row.state, row.output, row.attempt_open, row.ended_at = (
                    "success", encoded, 0, self.clock.now_ms())
                self._write_row(row)
                self._log(events.attempt_success, row.label, attempt)
                self._log(events.step_success, row.label)
            return json.loads(encoded)

    async def _retry_delay(
        self, resolved: dict[str, Any], attempt: int, ctx: StepContext, exc: BaseException
    ) -> int | None:
        delay = resolved["retries"]["delay"]
        if callable(delay):
            got = delay({"ctx": ctx, "error": exc})
            if asyncio.iscoroutine(got) or isinstance(got, Awaitable):
                got = await got
            base = parse_duration_ms(got)
            if base is None or base < 0:
                return None
            return int(base)
        base = parse_duration_ms(delay)
        return backoff_delay_ms(resolved, attempt, base or 0.0)

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

    async def _abort_unserialisable(self, row: StepRow, exc: _Unserialisable) -> None:
        attempt_err = {"name": "WorkflowFatalError",
                       "message": f'Value returned from step "{row.name}" is not serialisable'}
        with self._tx():
            row.state, row.error, row.attempt_open = "failure", json.dumps(attempt_err), 0
            self._write_row(row)
            self._log(FORWARD.attempt_failure, row.label, row.attempts, {"error": attempt_err})
            self._log(FORWARD.step_failure, row.label, data={"error": attempt_err})
        raise _FatalAbort({
            "name": "WorkflowFatalError",
            "message": "The execution of the Workflow instance was terminated, as the step "
            f'"{row.name}" returned a value which is not serialisable',
        }) from exc

    # == rollback ============================================================================

    def _register(self, row: StepRow, call: StepCall) -> RollbackEntry | None:
        if call.rollback is None or not row.has_rollback:
            return None
        config = json.loads(row.config or "{}")
        ctx = StepContext.build(row.name, row.count, max(row.attempts, 1), config)
        entry = RollbackEntry(row.key, call.rollback, ctx)
        self._registry[row.key] = entry
        return entry

    async def _rollback(self, trigger: dict[str, str]) -> dict[str, Any] | None:
        eligible = sorted(
            (r for r in self._rows.values() if r.kind == "do" and r.has_rollback),
            key=lambda r: r.seq, reverse=True,
        )
        if not eligible:
            return None
        started = any(r.kind == "rollback" for r in self._rows.values()) or self.meta.get(
            "rollback_started")
        if not started:
            with self._tx():
                self._set_meta(rollback_started=True)
                self._log("ROLLBACK_START", data={"triggerError": trigger,
                                                  "totalSteps": len(eligible)})
        error = error_from_record(trigger)
        completed, failure = 0, None
        self._rollback_phase = True
        try:
            for fwd in eligible:
                rkey = f"rollback:{fwd.key}"
                done = self._rows.get(rkey)
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
                    row = done or self._new_row("rollback", fwd.label, 1, rkey, None)
                    with self._tx():
                        insert = row.attempt_open == -1
                        row.state, row.error, row.attempt_open = "failure", json.dumps(failure), 0
                        self._write_row(row, insert=insert)
                        self._log(ROLLBACK.step_failure, row.label, data={"error": failure})
                    break
                resolved = resolve_config(entry.options.config)
                row = done or self._new_row("rollback", fwd.label, 1, rkey,
                                            describe_config(resolved))
                output = _decode(fwd.output) if fwd.state == "success" else None
                fwd_ctx = StepContext.build(fwd.name, fwd.count, max(fwd.attempts, 1),
                                            json.loads(fwd.config or "{}"))
                handler = entry.options.handler

                async def invoke(_: StepContext, o: Any = output, c: StepContext = fwd_ctx,
                                 h: Any = handler, label: str = fwd.label) -> None:
                    await h(RollbackContext(output=o, error=error, ctx=c, step_name=label))

                try:
                    await self._attempts(row, invoke, resolved, ROLLBACK)
                except Exception:
                    failure = json.loads(row.error or "{}")
                    break
                completed += 1
        finally:
            self._rollback_phase = False
        outcome = {"outcome": "failed" if failure else "complete", "error": failure}
        with self._tx():
            self._log("ROLLBACK_FAILED" if failure else "ROLLBACK_COMPLETE",
                      data={"totalSteps": len(eligible), "completedSteps": completed})
        return outcome

    # == waiting, pausing and the virtual clock ================================================

    async def _park_until(self, at: float, also: asyncio.Future[None] | None = None) -> None:
        """Wait for a timer (and optionally an event), as ``waiting``, with the alarm set."""
        if at <= self.clock.now_ms() and also is None:
            return
        parked_status = self._busy == 0 and self.status == "running"
        with self._tx():
            self.storage.set_alarm(at)
            if parked_status:
                self._set_meta(status="waiting")
        self.host.release_slot(self)
        self._wake_watchers()
        sleeper = asyncio.ensure_future(self.clock.sleep_until(at))
        try:
            waiters: set[asyncio.Future[Any]] = {sleeper} if also is None else {sleeper, also}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        await self.host.acquire_slot(self, waking=True)
        if self.status == "waiting":
            with self._tx():
                self._set_meta(status="running")
                self.storage.delete_alarm()

    async def _checkpoint(self) -> None:
        """Where a stop (pause, terminate) asked for meanwhile takes effect."""
        if self._stop_reason is not None:
            await asyncio.sleep(0)

    def _after_callback(self) -> None:
        self._wake_watchers()
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
        self._set_paused()
        self._wake_watchers()

    def _cancel_step_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self._step_tasks):
            if task is not current and task is not self._driver:
                task.cancel()
        self._step_tasks.clear()

    def _wake_watchers(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()
        self.host.activity()

    # == persistence helpers ===================================================================

    def _load_rows(self) -> None:
        cur = self.storage.sql.exec(f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps")
        self._rows = {r["key"]: StepRow(**r) for r in cur}
        seqs = [r.seq for r in self._rows.values()]
        self._next_seq = max(seqs) + 1 if seqs else 0
        self._other_steps = sum(1 for r in self._rows.values() if r.kind != "do")

    def _non_do_steps(self) -> int:
        return self._other_steps

    def _recover_open_attempts(self) -> None:
        """An attempt in flight when the process died counts as failed, and is retried."""
        for row in self._rows.values():
            if row.state != "running" or not row.attempt_open:
                continue
            config = json.loads(row.config or "null") or resolve_config(None)
            retry = row.attempts < attempts_allowed(config)
            events = ROLLBACK if row.kind == "rollback" else FORWARD
            with self._tx():
                row.attempt_open = 0
                data: dict[str, Any] = {"error": INTERNAL_ERROR}
                if retry:
                    delay = backoff_delay_ms(config, row.attempts,
                                             parse_duration_ms(config["retries"].get("delay",
                                                                                     0)) or 0)
                    data["retryDelayMs"] = delay
                    row.wake_at = self.clock.now_ms() + delay
                else:
                    row.state, row.error = "failure", json.dumps(INTERNAL_ERROR)
                self._write_row(row)
                self._log(events.attempt_failure, row.label, row.attempts, data)
                if not retry:
                    self._log(events.step_failure, row.label, data={"error": INTERNAL_ERROR})

    def _next_count(self, kind: str, name: str) -> int:
        count = self._counts.get((kind, name), 0) + 1
        self._counts[(kind, name)] = count
        return count

    def _new_row(self, kind: str, name: str, count: int, key: str, config: Any, *,
                 wake: float | None = None, event: str | None = None) -> StepRow:
        row = StepRow(key=key, kind=kind, name=name, count=count, seq=self._next_seq,
                      config=json.dumps(config) if config is not None else None,
                      started_at=self.clock.now_ms(), wake_at=wake)
        self._next_seq += 1
        self._rows[key] = row
        if kind != "do":
            self._other_steps += 1
        row.attempt_open = -1  # not yet written: the first attempt's transaction inserts it
        if kind in ("do", "rollback"):
            return row
        row.attempt_open = 0
        with self._tx():
            self._write_row(row, insert=True)
            if event:
                self._log(event, row.label, data={"until": wake} if wake else None)
        return row

    def _write_row(self, row: StepRow, insert: bool = False) -> None:
        if insert:
            self.storage.sql.exec(
                f"INSERT OR REPLACE INTO steps ({', '.join(_STEP_COLUMNS)}) VALUES "
                f"({', '.join('?' * len(_STEP_COLUMNS))})",
                *(getattr(row, c) for c in _STEP_COLUMNS),
            )
        else:
            self.storage.sql.exec(
                "UPDATE steps SET state = ?, attempts = ?, attempt_open = ?, output = ?, "
                "error = ?, has_rollback = ?, ended_at = ?, wake_at = ? WHERE key = ?",
                row.state, row.attempts, row.attempt_open, row.output, row.error,
                row.has_rollback, row.ended_at, row.wake_at, row.key,
            )

    def _set_meta(self, **changes: Any) -> None:
        old_status = self.meta.get("status")
        self.meta.update(changes)
        self.storage.put("meta", self.meta)
        if self.meta.get("status") != old_status:
            self.host.status_changed(self)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction; log entries written in it are flushed in one statement at its end."""
        with self.storage.transaction():
            outer = not self._in_tx
            self._in_tx = True
            try:
                yield
                if outer and self._pending_log:
                    self.storage.sql.exec_many(
                        "INSERT INTO log (id, ts, event, step, attempt, data) "
                        "VALUES (?, ?, ?, ?, ?, ?)", self._pending_log)
            finally:
                if outer:
                    self._in_tx = False
                    self._pending_log = []

    def _log(self, event: str, step: str | None = None, attempt: int | None = None,
             data: dict[str, Any] | None = None) -> None:
        """Append to the log; must be called inside `_tx`."""
        assert self._in_tx, "log entries are written inside a transaction"
        ts = self.clock.now_ms()
        if self._next_log_id == 0:
            last = self.storage.sql.exec("SELECT max(id) AS m FROM log").one()["m"]
            self._next_log_id = (last or 0) + 1
        event_id = self._next_log_id
        self._next_log_id += 1
        self._pending_log.append(
            (event_id, ts, event, step, attempt, json.dumps(data) if data is not None else None))
        self.host.logged(self, event_id, event, step, attempt, data, ts)

    # == reading ===============================================================================

    def status_dict(self) -> dict[str, Any]:
        """``{"status", "error", "output", "rollback"}`` as ``instance.status()`` returns it."""
        return {
            "status": self.status,
            "error": self.meta.get("error"),
            "output": self.meta.get("output"),
            "rollback": self.meta.get("rollback"),
        }

    def log_entries(self, after: int = 0) -> list[dict[str, Any]]:
        """The instance's event log, oldest first."""
        rows = self.storage.sql.exec(
            "SELECT id, ts, event, step, attempt, data FROM log WHERE id > ? ORDER BY id", after
        )
        return [
            {"id": r["id"], "timestamp": r["ts"], "event": r["event"], "step": r["step"],
             "attempt": r["attempt"], "data": json.loads(r["data"]) if r["data"] else None}
            for r in rows
        ]

    def step_rows(self) -> list[StepRow]:
        """Every persisted step, in start order."""
        cur = self.storage.sql.exec(f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps ORDER BY seq")
        return [StepRow(**r) for r in cur]


class _NoRetries:
    delay = None


_NO = _NoRetries()


class _Unserialisable(WorkflowError):
    """A step returned a value that cannot be stored."""


def _encode(value: Any, *, what: str, step: str | None = None) -> str:
    if isinstance(value, tuple | bytearray | bytes | set):
        raise _Unserialisable(f"{type(value).__name__} cannot be sent over RPC.") if step else \
            WorkflowError(f"{what}: {type(value).__name__} cannot be sent over RPC.")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        if step:
            raise _Unserialisable(str(exc)) from exc
        raise WorkflowError(f"{what} is not JSON-serialisable: {exc}") from exc
    if len(encoded.encode()) > MAX_OUTPUT_BYTES:
        if step:
            raise _OutputTooLarge(
                f"Step {step} output is too large. Maximum allowed size is 1MiB."
            )
        raise WorkflowError(f"{what} is too large. Maximum allowed size is 1MiB.")
    return encoded


class _OutputTooLarge(Exception):
    """A step output over 1 MiB (recorded as a ``WorkflowInternalError``)."""


_OutputTooLarge.__name__ = "WorkflowInternalError"


def _decode(encoded: str | None) -> Any:
    return None if encoded is None else json.loads(encoded)


def _event_value(value: dict[str, Any]) -> dict[str, Any]:
    out = dict(value)
    out["timestamp"] = datetime.fromtimestamp(value["timestamp"] / 1000.0)
    return out


def validate_event_type(event_type: object) -> str:
    """Check an event type as Cloudflare does."""
    import re

    if not isinstance(event_type, str) or not re.fullmatch(
        r"[a-zA-Z0-9_][a-zA-Z0-9_-]{0,99}", event_type
    ):
        raise WorkflowError(
            f"(workflow.invalid_event_type) invalid event type {event_type!r}: up to "
            f"{EVENT_TYPE_MAX} characters from a-z, A-Z, 0-9, '-' and '_' (no '.'), not "
            "starting with '-'"
        )
    return event_type


__all__ = ["InstanceEngine", "StepRow", "WorkflowTimeoutError", "parse_step_config"]
