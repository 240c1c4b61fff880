"""`InstanceEngine`: one instance's lifecycle state machine, and the driver that runs it.

One engine exists per instance, over that instance's own `InstanceStore`, as Cloudflare
runs one Engine Durable Object per instance. It composes the step backend, the attempt
runner and the rollback runner, and owns only the transitions between statuses: create,
run, wait, pause, resume, terminate, restart, finish. After a crash, ``run()`` is replayed
from the top and completed steps return their stored results without running again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from workflows_saga import WorkflowStep
from workflows_saga.backend import ErrorRecord, record_error

from . import output_gate
from .attempts import INTERNAL_ERROR, AttemptRunner, FatalAbort
from .compat import CURRENT, Compatibility
from .errors import (
    InstanceGone,
    InvalidActionError,
    StorageError,
    WorkflowError,
    WorkflowFatalError,
)
from .instance_store import InstanceStore
from .js_values import python_from_rpc
from .log_fold import StepRow, restart_keys, steps_in_start_order
from .modifiers import InstanceModifier
from .records import InstanceMeta, InstanceStatus, LogEvent, Phase
from .replay_guard import NonDeterminismError, ReplayGuard
from .rollback_runner import TERMINATED_ERROR, RollbackRunner
from .step_backend import EngineStepBackend, HandlerRegistry
from .values import as_datetime, encode_value, loads, validate_event_type

if TYPE_CHECKING:
    from .clock import Clock
    from .host import EngineHost

S = InstanceStatus

RunFactory = Callable[[], Callable[[dict[str, Any], Any], Awaitable[Any]]]
FAULT_RETRY_FIRST_S = 0.5
FAULT_RETRY_MAX_S = 30.0
"""With the real clock, an instance stopped by a storage fault tries again after these
(doubling) real seconds; with the virtual clock it runs again when driven (``wait()``)."""


class InstanceEngine:
    """Runs one instance; its step backend is what ``run()``'s ``step`` calls into."""

    def __init__(self, host: EngineHost, workflow: str, instance_id: str,
                 store: InstanceStore, make_run: RunFactory, step_limit: int,
                 compat: Compatibility = CURRENT) -> None:
        self.host = host
        self.workflow = workflow
        self.id = instance_id
        self.store = store
        store.listen(functools.partial(host.logged, self), self._storage_failed)
        self._make_run = make_run
        self.meta = store.read_meta() or InstanceMeta(instance_id, workflow, None, 0.0,
                                                      status=S.UNKNOWN)
        registry: HandlerRegistry = {}
        self._registry = registry
        self.compat = compat
        self.attempts = AttemptRunner(self, store, compat)
        self.steps = EngineStepBackend(self, store, self.attempts, registry, step_limit,
                                       ReplayGuard(instance_id, workflow, host.determinism))
        self.divergence: NonDeterminismError | None = None
        """Set when replaying run() met other steps than the log holds (mode "error"): the
        instance stops where it is; waiting on it raises this."""
        self.rollback = RollbackRunner(store, self.attempts, registry, host.clock)
        self._busy = 0
        self._draining = False
        self._epoch = 0
        """Counts halts: a step parked before one must not go on after it."""
        self._sleepers: set[asyncio.Future[Any]] = set()
        self._driver: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._fresh = False
        self.fault: StorageError | None = None
        """A storage fault that stopped this instance where it was, until it runs again."""
        self._retry_task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = FAULT_RETRY_FIRST_S
        self._alarm_clear = False
        """Whether the persisted alarm is known to be unset (spares deleting it at the end)."""
        self._load()

    @property
    def clock(self) -> Clock:
        return self.host.clock

    def modifier(self) -> InstanceModifier | None:
        """What a test changed about this instance's steps (see `modifiers`), if anything."""
        return self.host.modifiers.of(self.workflow, self.id)

    @property
    def status(self) -> InstanceStatus:
        return self.meta.status

    @property
    def terminal(self) -> bool:
        return self.meta.status.terminal

    @property
    def running(self) -> bool:
        """Whether a driver task is running this instance now."""
        return self._driver is not None and not self._driver.done()

    @property
    def busy(self) -> bool:
        """Whether a step callback or rollback handler is running."""
        return self._busy > 0

    # == lifecycle ================================================================================

    def create(self, params: Any, now: float, committed: Callable[[], None]) -> None:
        """Persist a new instance as ``queued``; ``committed`` is called once it is on disk.

        Committed before `create` returns, in a transaction of its own: a creation the
        caller was told of survives a crash, and the run starts after the caller resumes.
        """
        if not self.store.is_new:  # left by a create that crashed before it was indexed
            self.store.erase()
        self.meta = InstanceMeta(self.id, self.workflow, params, now)
        with self.store.transaction():
            self.store.write_meta(self.meta)
            self.store.append(LogEvent.WORKFLOW_QUEUED, now)
            self.store.when_committed(committed)
        self.steps.reloaded()  # the rows were folded as they were appended
        self._fresh = True
        self._alarm_clear = True  # a new (or erased) file has none

    def start(self) -> None:
        """Drive this instance (again, after a stop or a restart of the process)."""
        if self.fault is not None:
            return  # `recover` first
        if self.terminal or self.status == S.PAUSED or self.running:
            return
        self._driver = asyncio.get_running_loop().create_task(
            self._drive(), name=f"workflow:{self.workflow}:{self.id}")

    def driving_here(self) -> bool:
        """Whether the caller runs inside this instance's own ``run()`` or one of its steps."""
        current = asyncio.current_task()
        return (self._driver is not None and current is self._driver) or self.attempts.runs(current)

    async def halt(self, reason: str = "shutdown") -> None:
        """Stop driving at once, leaving the persisted state as it is (as a crash would).

        Steps still going on their own (parallel siblings that outlived a failed ``run()``,
        callbacks past their timeout) stop too: nothing of this run writes after a halt.
        Called from one of the run's own callbacks, it does not wait for the run to unwind.
        """
        driver = self._stop_run(reason)
        if driver is not None and not self.attempts.runs(asyncio.current_task()):
            await asyncio.gather(driver, return_exceptions=True)
            self._stop_reason = None
        self.steps.cancel_running()

    def _stop_run(self, reason: str) -> asyncio.Task[None] | None:
        """Cancel everything of the current run but the calling task; the driver if it was
        cancelled from outside it (it unwinds at its next await)."""
        self._epoch += 1
        current = asyncio.current_task()
        for waker in list(self._sleepers):
            waker.cancel()
        self.attempts.cancel_callbacks(keep=current)
        driver = self._driver
        if driver is None or driver.done():
            return None
        self._stop_reason = reason
        if driver is current:
            return None
        driver.cancel()
        return driver

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
        if self.status in (S.PAUSED, S.WAITING_FOR_PAUSE):
            return  # already pausing: nothing to do, as on Cloudflare
        if self.status not in (S.QUEUED, S.RUNNING, S.WAITING):
            raise InvalidActionError(
                f"(instance.cannot_pause) Cannot pause instance {self.id}: it is {self.status}")
        if self._busy == 0:
            await self.halt("pause")
            self._set_paused()
        else:
            with self.store.transaction():
                self._set_meta(status=S.WAITING_FOR_PAUSE, pause_requested=True)

    def mark_queued(self) -> None:
        """Waiting for a concurrency slot."""
        if self.status not in (S.QUEUED, S.WAITING):
            with self.store.transaction():
                self._set_meta(status=S.QUEUED)

    def _set_paused(self) -> None:
        now = self.clock.now_ms()
        with self.store.transaction():
            self._set_meta(status=S.PAUSED, pause_requested=False, paused_at=now)
            self.store.append(LogEvent.WORKFLOW_PAUSED, now)

    async def resume(self) -> None:
        if self.status == S.WAITING_FOR_PAUSE:
            with self.store.transaction():
                self._set_meta(status=S.RUNNING, pause_requested=False)
            return
        if self.status != S.PAUSED:
            raise InvalidActionError(
                f"(instance.cannot_resume) Cannot resume instance {self.id}: it is "
                f"{self.status}, not paused")
        now = self.clock.now_ms()
        with self.store.transaction():
            # Timers keep their remaining time: every pending wake-up moves by the pause.
            paused_at = self.meta.paused_at if self.meta.paused_at is not None else now
            self.store.append(LogEvent.WORKFLOW_RESUMED, now, data={"shiftMs": now - paused_at})
            self._set_meta(status=S.QUEUED, paused_at=None)
        self.start()

    async def terminate(self, rollback: bool = False) -> None:
        if self.terminal:
            raise InvalidActionError(
                "(instance.cannot_terminate) Cannot terminate instance since its on a "
                "finite state")
        if rollback and self.meta.phase == Phase.ROLLBACK and not self.meta.terminating:
            # The failure's own rollback is under way: as in Cloudflare's engine it carries
            # on (handlers see the failure, none restarts) and the instance ends errored.
            self.start()
            return
        await self.halt("terminate")
        if not rollback:
            self._finish(S.TERMINATED, LogEvent.WORKFLOW_TERMINATED)
            return
        with self.store.transaction():
            self._set_meta(phase=Phase.ROLLBACK, trigger=TERMINATED_ERROR, terminating=True,
                           status=S.RUNNING, pause_requested=False)
        # Handlers registered by this process's run stay; replay rebuilds them only when the
        # registry is empty (after a restart of the process), as Cloudflare's engine does.
        self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def restart(self, from_step: dict[str, Any] | None = None) -> None:
        forget = None if from_step is None else restart_keys(self.store.rows, from_step)
        await self.halt("restart")
        now = self.clock.now_ms()
        with self.store.transaction():
            self.store.forget(forget)
            # Running at once, as Cloudflare's engine reports it (queued if no slot is free).
            self._set_meta(status=S.RUNNING, error=None, output=None, rollback=None,
                           phase=Phase.FORWARD, trigger=None, terminating=False, ended=None,
                           pause_requested=False, paused_at=None, rollback_started=False)
            if forget is None:  # a new run: its log starts as a new instance's does
                self.store.append(LogEvent.WORKFLOW_QUEUED, now)
                self._set_meta(started=now)
                self.store.append(LogEvent.WORKFLOW_START, now)
            else:  # the run goes on from the step: its first entries stay
                self.store.append(LogEvent.WORKFLOW_RESTARTED, now, data={"from": from_step})
        self._load()
        self._registry.clear()
        self.start()

    async def check_replay(self) -> NonDeterminismError | None:
        """Replay ``run()`` over the log, running and writing nothing new; the divergence
        found, if any (the ``replay`` command; needs determinism "error")."""
        guard = self.steps.guard
        self.steps.replay_only = True
        try:
            await self._run_user_code()
            guard.run_ended()
        except Exception:
            pass           # past the log, given None for the steps it did not run
        finally:
            self.steps.replay_only = False
        return guard.divergence

    def send_event(self, event_type: str, payload: Any) -> None:
        if self.terminal:
            raise WorkflowError(
                f"(instance.not_running) Cannot send an event to instance {self.id}: it is "
                f"{self.status}")
        validate_event_type(event_type)
        encoded = encode_value(payload, what="event payload")
        now = self.clock.now_ms()
        with self.store.transaction():
            self.store.buffer_event(event_type, encoded, now)
            self.store.append(LogEvent.EVENT_RECEIVED, now, data={"eventType": event_type})
        self.steps.event_delivered(event_type)

    # == the driver ===============================================================================

    async def _drive(self) -> None:
        output_gate.acting.set(self.store)  # for this task and the steps it starts
        try:
            if not self.meta.terminating:  # a terminate rollback needs no slot
                await self.host.acquire_slot(self)
            if not self._fresh:  # created here and never driven: the rows are current
                self._load()
            self._fresh = False
            self.attempts.recover_cut_off()
            if self.meta.phase == Phase.ROLLBACK:
                await self._finish_rollback()
                return
            self._mark_running()
            guard = self.steps.guard
            try:
                output = await self._run_user_code()
                if guard.divergence is None:
                    guard.run_ended()
                if guard.divergence is not None:  # run() may have swallowed the error
                    self.divergence = guard.divergence
                    return
                encoded = encode_value(output, what="workflow output")
            except FatalAbort as abort:
                self._finish(S.ERRORED, LogEvent.WORKFLOW_FAILURE, error=abort.record)
                return
            except Exception as exc:  # an error escaping run(): terminal failure
                if self.store.fault is not None:
                    return  # the disk failed, not the workflow (even if run() caught it)
                if guard.divergence is not None:  # stopped where it is, nothing written
                    self.divergence = guard.divergence
                    return
                await self._fail(exc)
                return
            if self.store.fault is not None:
                return
            self._finish(S.COMPLETE, LogEvent.WORKFLOW_SUCCESS, output=loads(encoded))
        except InstanceGone:
            return  # deleted from inside its own run(): nothing is left to record
        except StorageError:
            return  # stopped where it is; `_storage_failed` has recorded the fault
        except asyncio.CancelledError:
            if self._stop_reason is None:
                raise
        finally:
            self.host.release_slot(self)
            self.host.activity()

    def _mark_running(self) -> None:
        now = self.clock.now_ms()
        # Held, as a step's result is: committed with what comes next (the first step's
        # start, mostly), before anything could depend on it. A crash before that leaves
        # the instance queued, and it starts again from the top, as it would anyway.
        with self.store.deferred():
            first = self.meta.started is None
            # A pause asked for before a crash still waits for the step to finish.
            status = S.WAITING_FOR_PAUSE if self.meta.pause_requested else S.RUNNING
            self._set_meta(status=status, started=self.meta.started or now)
            if first:
                self.store.append(LogEvent.WORKFLOW_START, now)

    async def _run_user_code(self) -> Any:
        self.steps.new_run()
        run = self._make_run()
        # As the Python SDK hands it over from JS: dicts that also answer ``event.payload``.
        event = python_from_rpc({
            "payload": self.meta.params,
            "timestamp": as_datetime(self.meta.created),
            "instanceId": self.id,
            "workflowName": self.workflow,
        })
        return await run(event, WorkflowStep(self.steps))

    async def _fail(self, exc: BaseException) -> None:
        trigger = record_error(exc)
        # Steps still running in parallel run on, as on Cloudflare (a JS promise cannot be
        # cancelled); their handlers run in start order with output None if still running.
        with self.store.transaction():
            self._set_meta(phase=Phase.ROLLBACK, trigger=trigger)
        outcome = await self._run_rollback(trigger)
        self._finish(S.ERRORED, LogEvent.WORKFLOW_FAILURE, error=self.compat.instance_error(trigger),
                     rollback=outcome)

    async def _finish_rollback(self) -> None:
        """Run (or carry on) the rollback phase, rebuilding handlers by replaying ``run()``."""
        trigger = self.meta.trigger or INTERNAL_ERROR
        if not self._registry:
            self.steps.replay_only = True
            try:
                await self._run_user_code()
            except Exception:
                pass
            finally:
                self.steps.replay_only = False
            if self.steps.guard.divergence is not None:  # the handlers could be the wrong ones
                self.divergence = self.steps.guard.divergence
                return
        outcome = await self._run_rollback(trigger)
        if self.meta.terminating:
            self._finish(S.TERMINATED, LogEvent.WORKFLOW_TERMINATED, rollback=outcome)
        else:
            self._finish(S.ERRORED, LogEvent.WORKFLOW_FAILURE, error=self.compat.instance_error(trigger),
                         rollback=outcome)

    async def _run_rollback(self, trigger: ErrorRecord) -> Any:
        return await self.rollback.run(trigger, self.meta.rollback_started,
                                       lambda: self._set_meta(rollback_started=True))

    def _finish(self, status: InstanceStatus, event: LogEvent, *, error: ErrorRecord | None = None,
                output: Any = None, rollback: Any = None) -> None:
        now = self.clock.now_ms()
        data: dict[str, Any] = {}
        if error is not None:
            data["error"] = error.to_json()
        if status == S.COMPLETE:
            data["output"] = output
        with self.store.transaction():
            self._set_meta(status=status, error=error, output=output, rollback=rollback,
                           ended=now, phase=Phase.DONE, pause_requested=False)
            self.store.append(event, now, data=data or None)
            if not self._alarm_clear:
                self.store.delete_alarm()
        self._alarm_clear = True
        self.store.release()  # a finished instance holds no file descriptor

    # == the hosts' side: parking, checkpoints, callbacks =========================================

    async def park_until(self, at: float) -> None:
        """Wait for a timer as ``waiting``, with the alarm set."""
        if at > self.clock.now_ms():
            await self._park(at, None)

    async def park_until_event(self, at: float, event: asyncio.Future[None]) -> None:
        """Wait for a timer or an event, whichever comes first."""
        await self._park(at, event)

    async def _park(self, at: float, event: asyncio.Future[None] | None) -> None:
        # A parallel step that outlived its finished run parks and wakes without touching
        # the instance's status, alarm or concurrency slot.
        owned = not self.terminal
        if owned:
            self._alarm_clear = False
            with self.store.transaction():
                self.store.set_alarm(at)
                # During rollback the status stays "running", as documented.
                if self._busy == 0 and self.status == S.RUNNING and not self.rollback.active:
                    self._set_meta(status=S.WAITING)
            self.host.release_slot(self)
        self.host.activity()
        epoch = self._epoch
        sleeper = asyncio.ensure_future(self.clock.sleep_until(at))
        self._sleepers.add(sleeper)
        try:
            wakers: set[asyncio.Future[Any]] = {sleeper} if event is None else {sleeper, event}
            await asyncio.wait(wakers, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            self._sleepers.discard(sleeper)
        if epoch != self._epoch:  # halted meanwhile: this step belongs to a stopped run
            raise asyncio.CancelledError
        if not owned or self.terminal:
            return
        await self.host.acquire_slot(self, waking=True)
        if self.status in (S.WAITING, S.QUEUED):
            with self.store.transaction():
                self._set_meta(status=S.RUNNING)
                self.store.delete_alarm()
            self._alarm_clear = True

    def refuse_steps_in_terminate_rollback(self) -> None:
        if self.rollback.active and self.meta.terminating:
            raise WorkflowFatalError("Cannot execute steps during rollback phase")

    def stop_requested(self) -> bool:
        """Whether `checkpoint` has anything to do (a cheap test for the hot path)."""
        return bool(self._draining or self._stop_reason is not None or self.meta.pause_requested)

    async def checkpoint(self) -> None:
        """Where a stop asked for meanwhile (pause, terminate, shutdown) takes effect."""
        if self._draining:
            await asyncio.get_running_loop().create_future()  # until halt() cancels it
        self._pause_if_requested()
        if self._stop_reason is not None:
            await asyncio.sleep(0)

    def callback_started(self) -> None:
        self._busy += 1
        self.host.busy_changed(+1)

    def callback_finished(self) -> None:
        self._busy -= 1
        self.host.busy_changed(-1)
        self.host.activity()
        self._pause_if_requested()

    def _pause_if_requested(self) -> None:
        """A pending pause takes effect once no step callback is running."""
        if (self._busy == 0 and self.meta.pause_requested and self._driver is not None
                and self._stop_reason is None):
            self._stop_reason = "pause"
            self._driver.cancel()
            asyncio.get_running_loop().call_soon(self._paused_after_stop)

    def _paused_after_stop(self) -> None:
        if self._driver is not None and not self._driver.done():
            asyncio.get_running_loop().call_soon(self._paused_after_stop)
            return
        self._stop_reason = None
        self.steps.cancel_running()
        if self.meta.pause_requested:
            self._set_paused()
        self.host.activity()

    # == storage faults ===========================================================================

    def _storage_failed(self, fault: StorageError) -> None:
        """The store could not read or write: stop here, keep the persisted state as it is."""
        if self.fault is not None:
            return
        self.fault = fault
        try:
            persisted = self.store.read_meta()
        except StorageError:
            persisted = None
        if persisted is not None:  # what was set in memory for the failed commit did not happen
            changed = persisted.status != self.meta.status
            self.meta = persisted
            if changed:
                self.host.status_changed(self)
        self._stop_run("storage")  # as `halt`, without waiting: we may be inside the run
        self.steps.cancel_running()
        self._retry_later()
        self.host.activity()

    def _retry_later(self) -> None:
        if self.clock.virtual:
            return  # under the virtual clock the test drives it again (``wait()``)
        if self._retry is not None:
            self._retry.cancel()
        loop = asyncio.get_running_loop()
        self._retry = loop.call_later(self._retry_delay, self._retry_after_fault)
        self._retry_delay = min(self._retry_delay * 2, FAULT_RETRY_MAX_S)

    def _retry_after_fault(self) -> None:
        self._retry = None
        if self.fault is None or self.store.closed:
            return

        async def retry() -> None:
            try:
                await self.recover()
            except StorageError:
                self._retry_later()
                return
            self.start()

        self._retry_task = asyncio.get_running_loop().create_task(
            retry(), name=f"retry:{self.workflow}:{self.id}")

    async def recover(self) -> None:
        """After a storage fault: once the stopped run has unwound, read the instance afresh.

        Raises:
            StorageError: the file still cannot be read (the instance stays stopped).
        """
        if self.fault is None:
            return
        driver = self._driver
        if driver is not None and not driver.done():
            await asyncio.gather(driver, return_exceptions=True)
        if self.fault is None:
            return  # recovered meanwhile
        self._stop_reason = None
        self.store.clear_fault()
        self._alarm_clear = False
        meta = self.store.read_meta()
        self.fault = None
        self._retry_delay = FAULT_RETRY_FIRST_S
        if meta is not None:
            self.meta = meta
            self.host.status_changed(self)
        self.steps.reloaded()

    def cancel_retry(self) -> None:
        """Forget a pending retry after a fault (the instance is closing or deleted)."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._retry_task is not None:
            self._retry_task.cancel()

    # == bookkeeping ==============================================================================

    def _load(self) -> None:
        self._alarm_clear = False  # read from the file: it may hold one
        self.store.load()
        self.steps.reloaded()

    def _set_meta(self, **changes: Any) -> None:
        old_status = self.meta.status
        for name, value in changes.items():
            setattr(self.meta, name, value)
        self.store.write_meta(self.meta)
        if self.meta.status != old_status:
            # The index mirrors committed statuses only: a crash before the commit must not
            # leave it ahead of the instance's own file.
            self.store.when_committed(functools.partial(self.host.status_changed, self))

    # == reading ==================================================================================

    def status_dict(self) -> dict[str, Any]:
        """``{"status", "error", "output", "rollback"}``, as ``instance.status()`` returns it."""
        return self.meta.status_json()

    def step_rows(self) -> list[StepRow]:
        """Every step, forward and rollback, in start order (handlers after forward steps)."""
        return steps_in_start_order(self.store.rows.values())
