"""The emulator's Python API: `Emulator`, its workflow bindings and instance handles.

Example:
    >>> async with Emulator() as emu:                          # doctest: +SKIP
    ...     wf = emu.workflow(Transfer, name="transfer")
    ...     inst = await wf.create(id="t-1", params={"amount": 10})
    ...     status = await inst.wait()
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows_saga._durations import Duration, duration_ms

from .clock import Clock, RealClock, VirtualClock
from .durable_object import DurableObjectNamespace, DurableObjectStorage
from .engine import InstanceEngine
from .errors import EmulatorError, InstanceNotFoundError, WorkflowError
from .events import FINAL_SUBSCRIBE_EVENTS, STATUSES, TERMINAL, subscribe_event
from .step_log import SCHEMA, StepRow, public_data
from .values import encode_value

ID_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_-]*$")
MAX_ID = 100
MAX_NAME = 64
MAX_BATCH = 100
DEFAULT_STEP_LIMIT = 10_000

_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    workflow TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, modified REAL NOT NULL, PRIMARY KEY (workflow, id)
);
CREATE INDEX IF NOT EXISTS instances_by_created ON instances (workflow, created);
"""


def validate_instance_id(instance_id: object) -> str:
    """Check an instance id as Cloudflare does (``Workflow instance has invalid id``)."""
    if (
        not isinstance(instance_id, str)
        or len(instance_id) > MAX_ID
        or not ID_PATTERN.match(instance_id)
    ):
        raise WorkflowError(
            f"Workflow instance has invalid id: {instance_id!r}. Use 1-{MAX_ID} characters "
            "from a-z, A-Z, 0-9, '-' and '_', not starting with '-'"
        )
    return instance_id


def validate_workflow_name(name: object) -> str:
    """Check a workflow name as wrangler does."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not ID_PATTERN.match(name):
        raise WorkflowError(
            f"invalid workflow name {name!r}: use 1-{MAX_NAME} characters from a-z, A-Z, "
            "0-9, '-' and '_', not starting with '-'"
        )
    return name


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclass
class _Registration:
    name: str
    make_run: Callable[[], Callable[[dict[str, Any], Any], Awaitable[Any]]]
    namespace: DurableObjectNamespace
    step_limit: int | None = None


class Emulator:
    """A local Cloudflare Workflows engine.

    Args:
        state: a state directory to persist into (created if missing). ``None`` keeps the
            state in a temporary directory removed on close.
        clock: ``"virtual"`` (default: time moves only through `advance` or ``wait()``),
            ``"real"``, or a `Clock`.
        step_limit: the maximum ``step.do`` calls per instance (``[workflows.limits] steps``).
        max_concurrency: how many instances may run at once; others are ``queued``.
    """

    def __init__(
        self,
        state: str | Path | None = None,
        *,
        clock: str | Clock = "virtual",
        step_limit: int = DEFAULT_STEP_LIMIT,
        max_concurrency: int | None = None,
    ) -> None:
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
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._index = DurableObjectStorage(self.state_dir / "index.sqlite")
        self._index.sql._conn.executescript(_INDEX_SCHEMA)
        self._workflows: dict[str, _Registration] = {}
        self._engines: dict[tuple[str, str], InstanceEngine] = {}
        self._busy = 0
        self._activity_count = 0
        self._activity = asyncio.Event()
        self._activity_waiters = 0
        self._slots: set[InstanceEngine] = set()
        self._slot_waiters: list[tuple[int, int, asyncio.Future[None], InstanceEngine]] = []
        self._slot_seq = 0
        self._subscribers: dict[tuple[str, str], list[asyncio.Queue[dict[str, Any]]]] = {}
        self._closed = False

    # -- context management -------------------------------------------------------------------

    async def __aenter__(self) -> Emulator:
        self._start_pending()
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
        engines = list(self._engines.values())
        if drain_timeout > 0:
            await asyncio.gather(*(e.drain(drain_timeout) for e in engines))
        for engine in engines:
            await engine.halt("shutdown")
            engine.storage.close()
        self._engines.clear()
        self._index.close()
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
        wf_name = validate_workflow_name(name or _kebab(cls.__name__))
        if not callable(getattr(cls, "run", None)):
            raise EmulatorError(f"{cls.__name__} has no run(self, event, step) method")

        def make_run() -> Callable[[dict[str, Any], Any], Awaitable[Any]]:
            try:
                obj = cls(ctx, env)
            except TypeError:
                obj = cls()
            run: Callable[[dict[str, Any], Any], Awaitable[Any]] = obj.run
            return run

        namespace = DurableObjectNamespace(self.state_dir / "instances" / wf_name)
        if step_limit is not None and step_limit < 1:
            raise EmulatorError("step_limit must be a positive integer")
        self._workflows[wf_name] = _Registration(wf_name, make_run, namespace, step_limit)
        self._start_pending(wf_name)
        return Workflow(self, wf_name)

    def _start_pending(self, only: str | None = None) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started on __aenter__ / first use
        for wf_name in [only] if only else list(self._workflows):
            rows = self._index.sql.exec(
                "SELECT id FROM instances WHERE workflow = ? AND status NOT IN "
                "('complete', 'errored', 'terminated')",
                wf_name,
            )
            for row in rows.to_array():
                engine = self._engine(wf_name, row["id"])
                # The instance's own storage is the truth; the index may lag after a crash.
                self.status_changed(engine)
                engine.start()

    def _registration(self, workflow: str) -> _Registration:
        try:
            return self._workflows[workflow]
        except KeyError:
            raise EmulatorError(
                f"workflow {workflow!r} is not registered: call emulator.workflow(YourClass, "
                f"name={workflow!r}) first"
            ) from None

    def _engine(self, workflow: str, instance_id: str) -> InstanceEngine:
        key = (workflow, instance_id)
        engine = self._engines.get(key)
        if engine is None:
            reg = self._registration(workflow)
            storage = reg.namespace.open(instance_id, SCHEMA)
            engine = InstanceEngine(self, workflow, instance_id, storage, reg.make_run,
                                    step_limit=reg.step_limit)
            self._engines[key] = engine
        return engine

    def _exists(self, workflow: str, instance_id: str) -> bool:
        return (
            self._index.sql.exec(
                "SELECT 1 AS x FROM instances WHERE workflow = ? AND id = ?", workflow, instance_id
            ).first()
            is not None
        )

    # -- time -----------------------------------------------------------------------------------

    async def advance(self, duration: Duration) -> None:
        """Move the virtual clock forward by ``duration`` (e.g. ``"3 hours"``), firing timers.

        Instances get to run between timers, so a retry scheduled by one timer can fire later
        within the same advance.
        """
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            raise EmulatorError("advance() needs the virtual clock (Emulator(clock='virtual'))")
        target = clock.now_ms() + duration_ms(duration, what="advance duration")
        await self._settle()
        while (nxt := clock.next_deadline()) is not None and nxt <= target:
            clock.advance_to(nxt)
            await self._settle()
        clock.advance_to(target)
        await self._settle()

    async def _settle(self) -> None:
        """Let instances run until nothing more is ready (running callbacks may go on)."""
        for _ in range(10_000):
            if await self._quiet(ignore_busy=True):
                return

    async def _quiet(self, ignore_busy: bool = False) -> bool:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            mark = self._activity_count
            await asyncio.sleep(0)
            if (self._busy and not ignore_busy) or mark != self._activity_count:
                return False
        return not getattr(loop, "_ready", ())

    async def _wait_activity(self, timeout: float) -> None:
        event = self._activity
        self._activity_waiters += 1
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._activity_waiters -= 1

    async def _drive_until(self, engine: InstanceEngine, done: Callable[[], bool],
                           timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        clock = self.clock
        while not done():
            if deadline is not None and loop.time() > deadline:
                raise TimeoutError(f"instance {engine.id} is still {engine.status}")
            if isinstance(clock, VirtualClock) and self._busy == 0:
                if not await self._quiet():
                    continue  # something ran: look again
                if done():
                    return
                if not engine.running and engine.status == "paused":
                    raise EmulatorError(
                        f"instance {engine.id} is paused: resume() it before waiting on it"
                    )
                nxt = clock.next_deadline()
                if nxt is None:
                    raise EmulatorError(
                        f"instance {engine.id} is {engine.status} and nothing can move it on: "
                        "no timer is pending and no step is running"
                    )
                clock.advance_to(nxt)
                continue
            await self._wait_activity(0.05 if self._busy else 0.5)

    # -- EngineHost ------------------------------------------------------------------------------

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
        if engine.status not in ("queued", "waiting"):
            with engine.storage.transaction():
                engine._set_meta(status="queued")
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

    def busy_changed(self, delta: int) -> None:
        self._busy += delta
        self.activity()

    def activity(self) -> None:
        self._activity_count += 1
        if self._activity_waiters:
            self._activity.set()
            self._activity = asyncio.Event()

    def status_changed(self, engine: InstanceEngine) -> None:
        now = self.clock.now_ms()
        self._index.sql.exec(
            "UPDATE instances SET status = ?, modified = ? WHERE workflow = ? AND id = ?",
            engine.status, now, engine.workflow, engine.id,
        )
        self.activity()

    def logged(self, engine: InstanceEngine, event_id: int, event: str, step: str | None,
               attempt: int | None, data: dict[str, Any] | None, ts: float) -> None:
        self._activity_count += 1
        queues = self._subscribers.get((engine.workflow, engine.id))
        if queues:
            entry = {"id": event_id, "timestamp": ts, "event": event, "step": step,
                     "attempt": attempt,
                     "data": json.loads(json.dumps(public_data(data)))}  # no aliasing
            for queue in queues:
                queue.put_nowait(entry)


class Workflow:
    """A workflow binding, as ``env.MY_WORKFLOW``: create and look up instances."""

    def __init__(self, emulator: Emulator, name: str) -> None:
        self._emu = emulator
        self.name = name

    async def create(
        self, id: str | None = None, params: Any = None
    ) -> Instance:
        """Create an instance and start it in the background; return at once.

        Raises:
            WorkflowError: an invalid or already used id, or params that are not JSON or
                are over 1 MiB.
        """
        created = await self.create_batch([{"id": id, "params": params}], _single=True)
        return created[0]

    async def create_batch(
        self, batch: Iterable[Mapping[str, Any]], *, _single: bool = False
    ) -> list[Instance]:
        """Create up to 100 instances; ids that already exist are skipped (not returned)."""
        items = list(batch)
        if not items:
            raise WorkflowError("batchCreate should have at least 1 instance")
        if len(items) > MAX_BATCH:
            raise WorkflowError(f"batchCreate takes at most {MAX_BATCH} instances, got {len(items)}")
        emu = self._emu
        emu._registration(self.name)
        prepared: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for item in items:
            unknown = set(item) - {"id", "params", "retention"}
            if unknown:
                raise WorkflowError(f"unknown create option(s) {sorted(unknown)}: use id, params")
            instance_id = item.get("id") or str(uuid.uuid4())
            validate_instance_id(instance_id)
            params = item.get("params")
            params = {} if params is None else params
            encode_value(params, what="params")
            if instance_id in seen or emu._exists(self.name, instance_id):
                if _single:
                    raise WorkflowError(f'Workflow instance with id "{instance_id}" already exists')
                continue
            seen.add(instance_id)
            prepared.append((instance_id, params))
        handles = []
        for instance_id, params in prepared:
            engine = emu._engine(self.name, instance_id)
            now = emu.clock.now_ms()
            engine.create(params, now)
            emu._index.sql.exec(
                "INSERT INTO instances (workflow, id, status, created, modified) "
                "VALUES (?, ?, ?, ?, ?)",
                self.name, instance_id, "queued", now, now,
            )
            engine.start()
            handles.append(Instance(emu, self.name, instance_id))
        return handles

    async def get(self, id: str) -> Instance:
        """The existing instance ``id``; `InstanceNotFoundError` if there is none."""
        validate_instance_id(id)
        if not self._emu._exists(self.name, id):
            raise InstanceNotFoundError(f"instance.not_found: no instance {id!r} in {self.name}")
        return Instance(self._emu, self.name, id)

    async def list(self, status: str | None = None) -> list[dict[str, Any]]:
        """Instances of this workflow, oldest first: ``{id, status, created, modified}``."""
        query = "SELECT id, status, created, modified FROM instances WHERE workflow = ?"
        args: list[Any] = [self.name]
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        return self._emu._index.sql.exec(query + " ORDER BY created, id", *args).to_array()


class Instance:
    """A handle on one instance, as ``WorkflowInstance``."""

    def __init__(self, emulator: Emulator, workflow: str, instance_id: str) -> None:
        self._emu = emulator
        self.workflow = workflow
        self.id = instance_id

    @property
    def _engine(self) -> InstanceEngine:
        if not self._emu._exists(self.workflow, self.id):
            raise InstanceNotFoundError(f"instance.not_found: no instance {self.id!r}")
        return self._emu._engine(self.workflow, self.id)

    async def status(self) -> dict[str, Any]:
        """``{"status", "error", "output", "rollback"}``."""
        return self._engine.status_dict()

    async def wait(self, *, until: str | Iterable[str] | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        """Drive the instance until its status is terminal (or one of ``until``); return it.

        With the virtual clock, time jumps to the next timer whenever every instance is
        parked on a timer (never while a step callback or rollback handler runs).

        Args:
            until: statuses to stop at instead of the terminal ones (e.g. ``{"waiting"}``).
            timeout: give up after this many real seconds (`TimeoutError`).
        """
        engine = self._engine
        if isinstance(until, str):
            until = {until}
        unknown = sorted(set(until or ()) - set(STATUSES))
        if unknown:
            raise EmulatorError(f"unknown status(es) {unknown} in until=; use some of {STATUSES}")
        targets = set(until) if until is not None else set(TERMINAL)
        targets |= TERMINAL

        def done() -> bool:
            if engine.status not in targets:
                return False
            # "waiting" is only reached once the engine is parked.
            return engine.status in TERMINAL or self._emu._busy == 0

        if engine.status not in TERMINAL and not engine.running and engine.status != "paused":
            engine.start()
        await self._emu._drive_until(engine, done, timeout)
        return engine.status_dict()

    async def pause(self) -> None:
        """Pause: ``waitingForPause`` until running steps finish, then ``paused``."""
        await self._engine.pause()

    async def resume(self) -> None:
        """Resume a paused instance (timers keep their remaining time)."""
        await self._engine.resume()

    async def terminate(self, rollback: bool = False) -> None:
        """Stop the instance; with ``rollback=True`` run its rollback handlers first.

        Returns once the instance is ``terminated`` (after the handlers, as on Cloudflare).
        """
        engine = self._engine
        await engine.terminate(rollback=rollback)
        if rollback:
            await self._emu._drive_until(engine, lambda: engine.terminal, None)

    async def restart(self, from_step: str | Mapping[str, Any] | None = None) -> None:
        """Run again from scratch, or from step ``from_step`` (name, or ``{name, count, type}``)."""
        spec = {"name": from_step} if isinstance(from_step, str) else (
            dict(from_step) if from_step is not None else None)
        await self._engine.restart(spec)

    async def send_event(self, type: str, payload: Any = None) -> None:
        """Deliver an event to ``wait_for_event(..., type)`` (buffered if not waiting yet)."""
        self._engine.send_event(type, payload)

    async def delete(self) -> None:
        """Stop and erase the instance, without running rollbacks."""
        emu = self._emu
        engine = self._engine
        await engine.halt("delete")
        engine.storage.close()
        emu._engines.pop((self.workflow, self.id), None)
        emu._registration(self.workflow).namespace.remove(self.id)
        emu._index.sql.exec(
            "DELETE FROM instances WHERE workflow = ? AND id = ?", self.workflow, self.id
        )

    def events(self) -> list[dict[str, Any]]:
        """The event log (``STEP_START``, ``ATTEMPT_*``, ``ROLLBACK_*``, ...), oldest first."""
        return self._engine.log_entries()

    def steps(self) -> list[StepRow]:
        """Every persisted step, forward and rollback, in start order."""
        return self._engine.step_rows()

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Yield the instance's events as ``subscribe()`` shapes: retained ones, then live ones.

        Ends after ``workflow_completed``, ``workflow_errored`` or ``workflow_terminated``.
        """
        engine = self._engine
        key = (self.workflow, self.id)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._emu._subscribers.setdefault(key, []).append(queue)
        try:
            last = 0
            for entry in engine.log_entries():
                last = entry["id"]
                event = subscribe_event(entry)
                yield event
                if event["type"] in FINAL_SUBSCRIBE_EVENTS:
                    return
            while True:
                entry = await queue.get()
                if entry["id"] <= last:
                    continue
                event = subscribe_event(entry)
                yield event
                if event["type"] in FINAL_SUBSCRIBE_EVENTS:
                    return
        finally:
            self._emu._subscribers[key].remove(queue)
