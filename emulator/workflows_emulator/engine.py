"""The engine of one workflow instance: runs ``run()`` durably, step by step, and rolls back.

One `InstanceEngine` exists per instance, over that instance's own Durable-Object stand-in,
as Cloudflare runs one Engine Durable Object per instance. Every transition is an entry of
the instance's log (`InstanceLog`), committed before the next transition begins; after a
crash, ``run()`` is replayed from the top and completed steps return their stored results
without running again.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workflows_saga._backend import RollbackOptions
from workflows_saga._config import ResolvedConfig, resolve_config
from workflows_saga._errors import error_record
from workflows_saga._step import WorkflowStep

from .durable_object import DurableObjectStorage
from .errors import InvalidActionError, WorkflowError, WorkflowFatalError
from .events import FORWARD, ROLLBACK, TERMINAL
from .rollback import TERMINATED_ERROR, RollbackPhase
from .step_log import InstanceLog, StepRow
from .steps import FatalAbort, StepExecution, step_key
from .values import encode_value, validate_event_type

if TYPE_CHECKING:
    from .host import EngineHost

INTERNAL_ERROR = {
    "name": "WorkflowInternalError",
    "message": "Attempt failed due to internal workflows error",
}
RESTART_TYPES = {"do": "do", "sleep": "sleep", "waitForEvent": "wait"}

RunFactory = Callable[[], Callable[[dict[str, Any], Any], Awaitable[Any]]]


class InstanceEngine(StepExecution, RollbackPhase):
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
        self.log = InstanceLog(storage, functools.partial(host.logged, self))
        self.meta: dict[str, Any] = storage.get("meta") or {}
        self._counts: dict[tuple[str, str], int] = {}
        self._next_seq = 0
        self._do_steps = 0
        self._registry: dict[str, RollbackOptions] = {}
        self._busy = 0
        self._replay_only = False
        self._rollback_phase = False
        self._draining = False
        self._driver: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._step_tasks: set[asyncio.Task[Any]] = set()
        self._event_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._load()

    @property
    def rows(self) -> dict[str, StepRow]:
        return self.log.rows

    # == lifecycle (called by the emulator's instance handle) ===================================

    def create(self, params: Any, now: float) -> None:
        """Persist a new instance as ``queued``."""
        if not self.storage.is_new:  # left by a create that crashed before it was indexed
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
                # A pause asked for before a crash still waits for the step to finish.
                status = "waitingForPause" if self.meta.get("pause_requested") else "running"
                self._set_meta(status=status, started=self.meta.get("started")
                               or self.clock.now_ms())
                if first:
                    self.log.append("WORKFLOW_START", self.clock.now_ms())
            try:
                output = await self._run_user_code()
                encoded = encode_value(output, what="workflow output")
            except FatalAbort as abort:
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

    def _stop_requested(self) -> bool:
        """Whether `_checkpoint` has anything to do (a cheap test for the hot path)."""
        return bool(self._draining or self._stop_reason is not None
                    or self.meta.get("pause_requested"))

    async def _checkpoint(self) -> None:
        """Where a stop asked for meanwhile (pause, terminate, shutdown) takes effect."""
        if self._draining:
            await asyncio.get_running_loop().create_future()  # until halt() cancels it
        self._pause_if_requested()
        if self._stop_reason is not None:
            await asyncio.sleep(0)

    def _after_callback(self) -> None:
        self.host.activity()
        self._pause_if_requested()

    def _pause_if_requested(self) -> None:
        """A pending pause takes effect once no step callback is running."""
        if (self._busy == 0 and self.meta.get("pause_requested") and self._driver is not None
                and self._stop_reason is None):
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
            stored = json.loads(row.config or "null")
            config = resolve_config(None) if stored is None else ResolvedConfig.from_shown(stored)
            events = ROLLBACK if row.kind == "rollback" else FORWARD
            # Retried at once (no backoff), as Cloudflare's engine does, within the limit.
            data: dict[str, Any] = {"error": INTERNAL_ERROR}
            retry = row.attempts < config.attempts
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
