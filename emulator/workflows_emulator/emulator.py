"""The emulator's Python API: `Emulator`, its workflow bindings and instance handles.

Example:
    >>> async with Emulator() as emu:                          # doctest: +SKIP
    ...     wf = emu.workflow(Transfer, name="transfer")
    ...     inst = await wf.create(id="t-1", params={"amount": 10})
    ...     status = await inst.wait()
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from workflows_saga import Duration

from . import output_gate
from .clock import Clock, RealClock, VirtualClock
from .compat import Compatibility
from .durable_object import OpenFiles
from .engine import InstanceEngine
from .errors import EmulatorError, InstanceNotFoundError, WorkflowError
from .events import FINAL_SUBSCRIBE_EVENTS, STATUSES, TERMINAL, subscribe_event
from .instance_catalog import BatchDeleteResult, InstanceCatalog
from .instance_index import InstanceIndex
from .log_fold import StepRow
from .replay_guard import check_mode
from .scheduler import Scheduler
from .state_lock import StateLock
from .values import (
    encode_value,
    is_addressable_id,
    validate_addressable_id,
    validate_instance_id,
    validate_workflow_name,
)

if TYPE_CHECKING:
    from .fault_injection import CrashPoint

MAX_BATCH = 100
DEFAULT_STEP_LIMIT = 10_000


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()



class OwnedResource(Protocol):
    """Something an `Emulator` closes with itself (see `Emulator.own`)."""

    def close(self) -> None: ...

    async def settle(self) -> None: ...

class Emulator:
    """A local Cloudflare Workflows engine.

    Args:
        state: a state directory to persist into (created if missing). ``None`` keeps the
            state in a temporary directory removed on close.
        clock: ``"virtual"`` (default: time moves only through `advance` or ``wait()``),
            ``"real"``, or a `Clock`.
        step_limit: the maximum ``step.do`` calls per instance (``[workflows.limits] steps``).
        max_concurrency: how many instances may run at once; others are ``queued``.
        compatibility_date: the Worker's ``compatibility_date`` (``None``: a current date);
            it and ``compatibility_flags`` switch date-gated behaviour as on Cloudflare
            (see `Compatibility`).
        compatibility_flags: the Worker's ``compatibility_flags``.
        max_open_files: how many instance files may be open at once (default: a share of
            ``ulimit -n``); idle ones are closed first and reopened on demand.
        lock: this process's lock on ``state`` if the caller took it already (the dev
            server takes it before importing the project); otherwise the emulator takes it
            and releases it on close.
        determinism: what replaying ``run()`` into other steps than its log holds does:
            ``"error"`` (the instance stops and waiting on it raises `NonDeterminismError`),
            ``"warn"`` (a `NonDeterminismWarning`; it carries on as on Cloudflare) or
            ``"off"``. See `replay_guard`.

    Raises:
        StateDirectoryBusy: another process (or another open emulator) drives ``state``.
        StorageError: the state directory cannot be written.
    """

    def __init__(
        self,
        state: str | Path | None = None,
        *,
        clock: str | Clock = "virtual",
        step_limit: int = DEFAULT_STEP_LIMIT,
        max_concurrency: int | None = None,
        compatibility_date: str | None = None,
        compatibility_flags: Iterable[str] = (),
        max_open_files: int | None = None,
        lock: StateLock | None = None,
        determinism: str = "error",
    ) -> None:
        self.compatibility = Compatibility.of(compatibility_date, compatibility_flags)
        if isinstance(clock, str):
            if clock not in ("virtual", "real"):
                raise EmulatorError(f'clock must be "virtual", "real" or a Clock, not {clock!r}')
            clock = VirtualClock() if clock == "virtual" else RealClock()
        self.clock: Clock = clock
        if step_limit < 1:
            raise EmulatorError("step_limit must be a positive integer")
        self.step_limit = step_limit
        self.max_concurrency = max_concurrency
        self._tmp = None if state is not None else tempfile.mkdtemp(prefix="workflows-emulator-")
        self.state_dir = Path(state if state is not None else self._tmp or ".").resolve()
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise EmulatorError(
                f"state path {self.state_dir} is a file; the emulator keeps its state in a "
                "directory: pass a directory path (it is created if missing)"
            )
        if lock is not None and lock.state_dir != self.state_dir:
            raise EmulatorError(f"the lock given is on {lock.state_dir}, not on {self.state_dir}")
        self._own_lock = lock is None
        self._lock = StateLock.acquire(self.state_dir) if lock is None else lock
        try:
            self._index = InstanceIndex(self.state_dir)
        except BaseException:
            self._release_lock()
            raise
        self.files = OpenFiles(max_open_files)
        self._owned: list[OwnedResource] = []
        self._scheduler = Scheduler(clock, self._index, max_concurrency)
        self._scheduler.determinism = check_mode(determinism)
        self._catalog = InstanceCatalog(self.state_dir, self._scheduler, self._index,
                                        self.compatibility, self.files)
        self._closed = False

    def _release_lock(self) -> None:
        if self._own_lock:
            self._lock.release()

    # -- context management -------------------------------------------------------------------

    async def __aenter__(self) -> Emulator:
        self._catalog.resume_unfinished()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, drain_timeout: float = 0.0) -> None:
        """Stop every running instance where it is (its state stays on disk) and close.

        Args:
            drain_timeout: real seconds that running step callbacks and rollback handlers
                get to finish first (no new attempt starts meanwhile); ``0`` stops them at
                once, as a crash would (the attempt is then retried on the next start).
        """
        if self._closed:
            return
        self._closed = True
        try:
            await self._catalog.close(drain_timeout)
        finally:
            self._catalog.stop_preparing()
            self._close_owned()
            self.files.finish()
            self._index.close()
            self._release_lock()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def close_idle(self) -> None:
        """Close the state files of an emulator that runs nothing (no event loop needed).

        Raises:
            EmulatorError: an instance is still running here: ``await close()`` instead.
        """
        if self._closed:
            return
        self._catalog.close_idle()
        self._catalog.stop_preparing()
        self._closed = True
        self._close_owned()
        self.files.finish()
        self._index.close()
        self._release_lock()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # -- workflows ----------------------------------------------------------------------------

    def workflow(
        self, cls: type, name: str | None = None, *, env: Any = None, ctx: Any = None,
        step_limit: int | None = None,
    ) -> Workflow:
        """Register a workflow class and return its binding (like ``env.MY_WORKFLOW``).

        Instances of this workflow left unfinished in the state directory (by a crash or a
        stop) resume.
        """
        if not isinstance(cls, type):
            raise TypeError(
                "workflow() registers a class: emulator.workflow(MyWorkflow, name='my-workflow')"
                f"; got {type(cls).__name__} {cls!r}. To look up instances, use the returned "
                "binding's get()"
            )
        wf_name = validate_workflow_name(_kebab(cls.__name__) if name is None else name)
        if not callable(getattr(cls, "run", None)):
            raise EmulatorError(f"{cls.__name__} has no run(self, event, step) method")

        def make_run() -> Callable[[dict[str, Any], Any], Awaitable[Any]]:
            try:
                obj = cls(ctx, env)
            except TypeError:
                obj = cls()
            run: Callable[[dict[str, Any], Any], Awaitable[Any]] = obj.run
            return run

        if step_limit is not None and step_limit < 1:
            raise EmulatorError("step_limit must be a positive integer")
        self._catalog.register(wf_name, make_run, step_limit or self.step_limit)
        self._catalog.resume_unfinished(wf_name)
        return Workflow(self._catalog, self._scheduler, wf_name)

    # -- time -----------------------------------------------------------------------------------

    async def advance(self, duration: Duration) -> None:
        """Move the virtual clock forward by ``duration`` (e.g. ``"3 hours"``), firing timers.

        Instances get to run between timers, so a retry scheduled by one timer can fire later
        within the same advance.
        """
        await self._scheduler.advance(duration)
        await self._settle_owned()

    async def settle(self) -> None:
        """Let every instance run until nothing more is ready to run, without moving time.

        Use it in tests instead of sleeping: after ``await emu.settle()``, each instance is
        parked (on a timer, an event, a slot) or inside a running step callback.
        """
        await self._scheduler.settle()
        await self._settle_owned()

    def crash_at(self, event: str, nth: int = 1, step: str | None = None) -> CrashPoint:
        """Die right after the ``nth`` commit of log ``event`` (of step ``step``, e.g.
        ``"credit-1"``), as a killed process would; ``await crash.wait(instance)`` drives
        until then and closes this emulator. See `fault_injection`."""
        from .fault_injection import CrashPoint

        point = CrashPoint(self, event, nth, step)
        self._scheduler.log_watchers.append(point.logged)
        return point

    def own(self, resource: OwnedResource) -> None:
        """Close ``resource`` with the emulator, once its instances have stopped (they may
        use it until then), and let `settle`/`advance` wait for its background work, such
        as the Durable Object alarms of a project's bindings."""
        self._owned.append(resource)

    async def _settle_owned(self) -> None:
        for resource in self._owned:
            await resource.settle()
        if self._owned:
            await self._scheduler.settle()  # what the background work started

    def _close_owned(self) -> None:
        while self._owned:
            self._owned.pop().close()


class Workflow:
    """A workflow binding, as ``env.MY_WORKFLOW``: create and look up instances."""

    def __init__(self, catalog: InstanceCatalog, scheduler: Scheduler, name: str) -> None:
        self._catalog = catalog
        self._scheduler = scheduler
        self.name = name

    async def create(self, id: str | None = None, params: Any = None) -> Instance:
        """Create an instance and start it in the background; return at once.

        Raises:
            WorkflowError: an invalid or already used id, or params that are not JSON or
                are over 1 MiB.
        """
        created = await self._create([{"id": id, "params": params}], single=True)
        return created[0]

    async def create_batch(self, batch: Iterable[Mapping[str, Any]]) -> list[Instance]:
        """Create up to 100 instances; ids that already exist are skipped (not returned)."""
        return await self._create(list(batch), single=False)

    async def _create(self, items: list[Mapping[str, Any]], single: bool) -> list[Instance]:
        if not items:
            raise WorkflowError("batchCreate should have at least 1 instance")
        if len(items) > MAX_BATCH:
            raise WorkflowError(f"batchCreate takes at most {MAX_BATCH} instances, got {len(items)}")
        self._catalog.registration(self.name)
        prepared = self._validated(items, single)
        for instance_id, params in prepared:
            self._catalog.create(self.name, instance_id, params)
        return [self._handle(instance_id) for instance_id, _ in prepared]

    def _validated(self, items: list[Mapping[str, Any]], single: bool) -> list[tuple[str, Any]]:
        """Every item checked before any is created: ``(id, params)`` of the new ones."""
        prepared: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for item in items:
            unknown = set(item) - {"id", "params", "retention"}
            if unknown:
                raise WorkflowError(f"unknown create option(s) {sorted(unknown)}: use id, params")
            given = item.get("id")
            # A random UUID is valid and no instance has it: neither is checked.
            instance_id = str(uuid.uuid4()) if given is None else validate_instance_id(given)
            params = item.get("params")
            params = {} if params is None else params
            encode_value(params, what="params")
            if given is not None and (instance_id in seen
                                      or self._catalog.exists(self.name, instance_id)):
                if single:
                    raise WorkflowError(f'Workflow instance with id "{instance_id}" already exists')
                continue
            seen.add(instance_id)
            prepared.append((instance_id, params))
        return prepared

    def _handle(self, instance_id: str) -> Instance:
        return Instance(self._catalog, self._scheduler, self.name, instance_id)

    async def get(self, id: str) -> Instance:
        """The existing instance ``id``; `InstanceNotFoundError` if there is none."""
        validate_addressable_id(id)
        if not self._catalog.exists(self.name, id):
            raise InstanceNotFoundError(f"instance.not_found: no instance {id!r} in {self.name}")
        return self._handle(id)

    async def list(self, status: str | None = None) -> list[dict[str, Any]]:
        """Instances of this workflow, oldest first: ``{id, status, created, modified}``."""
        return self._catalog.list(self.name, status)

    async def delete_instance(self, id: str) -> None:
        """Stop and erase instance ``id`` (JS ``deleteInstance``), without rollbacks.

        Raises:
            WorkflowError: ``(instance.invalid_id)`` for an id no instance can have.
            InstanceNotFoundError: no such instance.
        """
        if not is_addressable_id(id):
            raise WorkflowError("(instance.invalid_id) Instance ID is invalid")
        if not self._catalog.exists(self.name, id):
            raise InstanceNotFoundError(f"(instance.not_found) no instance {id!r} in {self.name}")
        await self._catalog.delete(self.name, id)

    async def delete_batch(self, instances: Iterable[str]) -> BatchDeleteResult:
        """Delete up to 100 instances (JS ``deleteBatch``); each id is reported in order.

        Returns:
            ``{"deleted": [{"id"}], "errors": [{"id", "code", "message"}]}``; a missing
            instance is error 10400 ``workflows.api.error.instance.not_found``.
        """
        ids = list(instances)
        if not ids:
            raise WorkflowError("(body) batchDeleteInstances should have at least 1 instance")
        if len(ids) > MAX_BATCH:
            raise WorkflowError(
                f"(body) batchDeleteInstances only supports {MAX_BATCH} instances at a time")
        if not all(is_addressable_id(i) for i in ids):
            raise WorkflowError("(instance.invalid_id) Instance ID is invalid")
        return await self._catalog.delete_batch(self.name, ids)


class Instance:
    """A handle on one instance, as ``WorkflowInstance``."""

    def __init__(self, catalog: InstanceCatalog, scheduler: Scheduler, workflow: str,
                 instance_id: str) -> None:
        self._catalog = catalog
        self._scheduler = scheduler
        self.workflow = workflow
        self.id = instance_id

    @property
    def _engine(self) -> InstanceEngine:
        return self._catalog.engine(self.workflow, self.id)

    async def _live_engine(self) -> InstanceEngine:
        """The engine, read afresh from its file first if a storage fault stopped it."""
        engine = self._catalog.engine(self.workflow, self.id)
        await engine.recover()
        return engine

    async def status(self) -> dict[str, Any]:
        """``{"status", "error", "output", "rollback"}``."""
        settled = self._catalog.settled_status(self.workflow, self.id)
        output_gate.open_gate()  # what the caller sees is on disk
        return settled if settled is not None else self._engine.status_dict()

    async def wait(self, *, until: str | Iterable[str] | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        """Drive the instance until its status is terminal (or one of ``until``); return it.

        With the virtual clock, time jumps to the next timer whenever every instance is
        parked on a timer (never while a step callback or rollback handler runs).

        Args:
            until: statuses to stop at instead of the terminal ones (e.g. ``{"waiting"}``).
            timeout: give up after this many real seconds (`TimeoutError`).
        """
        if isinstance(until, str):
            until = {until}
        unknown = sorted(set(until or ()) - set(STATUSES))
        if unknown:
            raise EmulatorError(f"unknown status(es) {unknown} in until=; use some of {STATUSES}")
        settled = self._catalog.settled_status(self.workflow, self.id)
        if settled is not None:  # finished (every target includes the terminal statuses)
            return settled
        engine = await self._live_engine()
        targets = (set(until) if until is not None else set()) | TERMINAL
        scheduler = self._scheduler

        def done() -> bool:
            if engine.status not in targets:
                return False
            # "waiting" is only reached once the engine is parked.
            return engine.terminal or not scheduler.busy

        engine.start()
        await scheduler.drive_until(engine, done, timeout)
        output_gate.open_gate()
        return engine.status_dict()

    # Precise waits (workflows_emulator.testing.waits): each returns the awaited step's row and
    # raises EmulatorError (finished or stuck first) or TimeoutError, naming what it is doing.

    async def wait_for_sleep(self, name: str | None = None, *,
                             timeout: float | None = None) -> StepRow:
        """Drive the instance until it sleeps in ``step.sleep`` (called ``name``, if given).

        Returns when the sleep starts: with the virtual clock, its timer is still ahead.
        """
        from .testing.waits import sleeping, wait_for_step_row
        return await wait_for_step_row(self, sleeping(name), timeout)

    async def wait_for_event_wait(self, type: str | None = None, *, name: str | None = None,
                                  timeout: float | None = None) -> StepRow:
        """Drive the instance until it waits in ``step.wait_for_event`` (for event ``type``,
        in the step called ``name``, if given), before the event arrives or times out."""
        from .testing.waits import wait_for_step_row, waiting_for_event
        return await wait_for_step_row(self, waiting_for_event(type, name), timeout)

    async def wait_for_step_started(self, name: str, *, timeout: float | None = None) -> StepRow:
        """Drive the instance until its step ``name`` (or label ``"name-count"``) has started."""
        from .testing.waits import step_started, wait_for_step_row
        return await wait_for_step_row(self, step_started(name), timeout)

    async def wait_for_step_finished(self, name: str, *, timeout: float | None = None) -> StepRow:
        """Drive the instance until its step ``name`` has ended: succeeded, or failed for good
        (after its retries); the row's ``state`` says which."""
        from .testing.waits import step_finished, wait_for_step_row
        return await wait_for_step_row(self, step_finished(name), timeout)

    async def pause(self) -> None:
        """Pause: ``waitingForPause`` until running steps finish, then ``paused``."""
        await (await self._live_engine()).pause()

    async def resume(self) -> None:
        """Resume a paused instance (timers keep their remaining time)."""
        await (await self._live_engine()).resume()

    async def terminate(self, rollback: bool = False) -> None:
        """Stop the instance; with ``rollback=True`` run its rollback handlers first.

        Returns once the instance is ``terminated`` (after the handlers, as on Cloudflare).
        """
        engine = await self._live_engine()
        await engine.terminate(rollback=rollback)
        if rollback:
            await self._scheduler.drive_until(engine, lambda: engine.terminal, None)

    async def restart(self, from_step: str | Mapping[str, Any] | None = None) -> None:
        """Run again from scratch, or from step ``from_step`` (name, or ``{name, count, type}``)."""
        spec = {"name": from_step} if isinstance(from_step, str) else (
            dict(from_step) if from_step is not None else None)
        await (await self._live_engine()).restart(spec)

    async def send_event(self, type: str, payload: Any = None) -> None:
        """Deliver an event to ``wait_for_event(..., type)`` (buffered if not waiting yet)."""
        (await self._live_engine()).send_event(type, payload)

    async def delete(self) -> None:
        """Stop and erase the instance, without running rollbacks."""
        await self._catalog.delete(self.workflow, self.id)

    def next_timer_in(self) -> float | None:
        """Seconds (on the emulator's clock) until the timer the instance is parked on fires:
        a sleep, a retry delay or an event's timeout; ``None`` if none is set."""
        at = self._engine.store.alarm()
        if at is None:
            return None
        return max(0.0, (at - self._scheduler.clock.now_ms()) / 1000)

    def events(self) -> list[dict[str, Any]]:
        """The event log (``STEP_START``, ``ATTEMPT_*``, ``ROLLBACK_*``, ...), oldest first."""
        return self._engine.store.entries()

    def instance_events(self) -> list[dict[str, Any]]:
        """The instance's own log entries (queued, start, end, rollback phase, events
        received), without its steps' entries."""
        return self._engine.store.entries(instance_level=True)

    def steps(self) -> list[StepRow]:
        """Every persisted step, forward and rollback, in start order."""
        output_gate.open_gate()
        return self._engine.step_rows()

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Yield the instance's events as ``subscribe()`` shapes: retained ones, then live ones.

        Ends after ``workflow_completed``, ``workflow_errored`` or ``workflow_terminated``.
        """
        engine = self._engine
        queue = self._scheduler.subscribe(self.workflow, self.id)
        try:
            last = 0
            for entry in engine.store.entries():
                last = entry["id"]
                event = subscribe_event(entry)
                yield event
                if event["type"] in FINAL_SUBSCRIBE_EVENTS:
                    return
            while True:
                entry = await queue.get()
                if entry["id"] <= last:
                    continue
                output_gate.open_gate()  # told as it happened, seen once it is on disk
                event = subscribe_event(entry)
                yield event
                if event["type"] in FINAL_SUBSCRIBE_EVENTS:
                    return
        finally:
            self._scheduler.unsubscribe(self.workflow, self.id, queue)
