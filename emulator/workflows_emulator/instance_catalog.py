"""`InstanceCatalog`: the registered workflows and their instances' engines in one state directory.

It creates, opens, resumes and deletes instances: each instance's engine over its own
store, indexed in the `InstanceIndex`, hosted by the `Scheduler`.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import output_gate
from .compat import Compatibility
from .durable_object import DurableObjectNamespace, OpenFiles, PreparedFiles
from .engine import InstanceEngine
from .errors import DamagedStateError, EmulatorError, InstanceGone, InstanceNotFoundError, StorageError
from .instance_index import InstanceIndex
from .instance_store import SCHEMA, SCHEMA_VERSION, InstanceStore
from .records import InstanceStatus
from .scheduler import Scheduler
from .values import dumps, loads

BatchDeleteResult = dict[str, list[dict[str, Any]]]
"""``{"deleted": [{"id"}], "errors": [{"id", "code", "message"}]}``, as JS ``deleteBatch``."""
NOT_FOUND = {"code": 10400, "message": "workflows.api.error.instance.not_found"}

RunFactory = Callable[[], Callable[[dict[str, Any], Any], Awaitable[Any]]]
FINISHED_KEPT = 64
"""How many finished instances keep their engine in memory (the rest are read again from
their file when asked for): memory stays flat however many instances finish."""
PREPARED_DIR = ".prepared"
"""The folder (in the state directory) of instance files made ahead (see `PreparedFiles`):
never an instance, emptied on every open and close."""
SETTLED_BYTES = 8 << 20
"""The JSON bytes of finished instances' statuses kept after their engine goes, so
``status()`` and ``wait()`` of a finished instance need not open its file again."""


class SettledStatuses:
    """Statuses of finished instances whose engine was let go, newest kept, within a byte budget.

    Kept as JSON text: a hit returns a fresh copy, and the budget counts what is really held.
    """

    def __init__(self, budget: int = SETTLED_BYTES) -> None:
        self._budget = budget
        self._used = 0
        self._texts: OrderedDict[tuple[str, str], str] = OrderedDict()

    def put(self, key: tuple[str, str], status: dict[str, Any]) -> None:
        """Remember ``status`` of instance ``key`` (dropping the oldest beyond the budget)."""
        self.pop(key)
        try:
            text = dumps(status)  # as stored: datetimes tagged, and back as datetimes
        except (TypeError, ValueError):
            return  # a cache must never stop an engine: the file answers instead
        if len(text) > self._budget // 64:  # a large output: reading the file is fine
            return
        self._texts[key] = text
        self._used += len(text)
        while self._used > self._budget:
            _, old = self._texts.popitem(last=False)
            self._used -= len(old)

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        """A copy of the remembered status of ``key``, if any."""
        text = self._texts.get(key)
        return None if text is None else dict(loads(text))

    def pop(self, key: tuple[str, str]) -> None:
        """Forget ``key`` (its engine is back, or it is deleted)."""
        text = self._texts.pop(key, None)
        if text is not None:
            self._used -= len(text)


@dataclass(frozen=True)
class Registration:
    """A workflow class registered under a name."""

    name: str
    make_run: RunFactory
    namespace: DurableObjectNamespace
    step_limit: int


class InstanceCatalog:
    """Every registered workflow's instances, opened on demand and kept open while in use."""

    def __init__(self, state_dir: Path, scheduler: Scheduler, index: InstanceIndex,
                 compat: Compatibility, files: OpenFiles) -> None:
        self._state_dir = state_dir
        self._files = files
        self._compat = compat
        self._scheduler = scheduler
        self._index = index
        self._workflows: dict[str, Registration] = {}
        self._engines: dict[tuple[str, str], InstanceEngine] = {}
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._settled = SettledStatuses()
        self._prepared = PreparedFiles(state_dir / PREPARED_DIR, SCHEMA, SCHEMA_VERSION)
        scheduler.on_finished = self._finished_engine

    def register(self, name: str, make_run: RunFactory, step_limit: int) -> None:
        """Register (or replace) workflow ``name``."""
        namespace = DurableObjectNamespace(self._state_dir / "instances" / name, self._files,
                                           self._prepared)
        self._workflows[name] = Registration(name, make_run, namespace, step_limit)

    def registration(self, workflow: str) -> Registration:
        """Workflow ``workflow``'s registration, or `EmulatorError` saying how to register it."""
        try:
            return self._workflows[workflow]
        except KeyError:
            raise EmulatorError(
                f"workflow {workflow!r} is not registered: call emulator.workflow(YourClass, "
                f"name={workflow!r}) first"
            ) from None

    def workflows(self) -> list[str]:
        """The names of the registered workflows."""
        return list(self._workflows)

    def exists(self, workflow: str, instance_id: str) -> bool:
        """Whether instance ``instance_id`` of ``workflow`` exists."""
        return self._index.exists(workflow, instance_id)

    def engine(self, workflow: str, instance_id: str) -> InstanceEngine:
        """The engine of an existing instance; `InstanceNotFoundError` if there is none."""
        engine = self._engines.get((workflow, instance_id))
        if engine is not None:
            return engine
        if not self.exists(workflow, instance_id):
            raise InstanceNotFoundError(f"instance.not_found: no instance {instance_id!r}")
        return self._open(workflow, instance_id, create=False)

    def settled_status(self, workflow: str, instance_id: str) -> dict[str, Any] | None:
        """The status of a finished instance whose engine was let go (None: ask the engine)."""
        return self._settled.get((workflow, instance_id))

    def _open(self, workflow: str, instance_id: str, create: bool) -> InstanceEngine:
        key = (workflow, instance_id)
        engine = self._engines.get(key)
        if engine is None:
            self._settled.pop(key)  # the engine answers from now on (it may restart)
            reg = self.registration(workflow)
            try:
                store = InstanceStore.open(reg.namespace, instance_id, create=create)
            except DamagedStateError as exc:
                self._index.mark_damaged(workflow, instance_id, exc.cause)
                raise
            except EmulatorError as exc:
                if not isinstance(exc, StorageError):  # written by another schema version
                    self._index.mark_damaged(workflow, instance_id, str(exc))
                raise
            try:
                engine = InstanceEngine(self._scheduler, workflow, instance_id, store,
                                        reg.make_run, reg.step_limit, self._compat)
            except BaseException:
                store.close()
                raise
            self._engines[key] = engine
            if engine.terminal:  # read for a status or a describe: it holds no file after
                store.release()
                self._finished_engine(engine)
        return engine

    def _finished_engine(self, engine: InstanceEngine) -> None:
        """Keep the last `FINISHED_KEPT` finished engines; let older ones go."""
        finished = self._finished
        finished[(engine.workflow, engine.id)] = None
        finished.move_to_end((engine.workflow, engine.id))
        while len(finished) > FINISHED_KEPT:
            key, _ = finished.popitem(last=False)
            old = self._engines.get(key)
            if old is not None and old.terminal and not old.running and not old.busy:
                del self._engines[key]
                self._settled.put(key, old.status_dict())
                old.store.release()  # closed in the background, as any idle file
                old.store.close()

    def create(self, workflow: str, instance_id: str, params: Any) -> InstanceEngine:
        """Persist a new instance and start it; it is indexed once its creation is committed
        (the index may lag the instance files, never lead them), with the statuses."""
        engine = self._open(workflow, instance_id, create=True)
        now = self._scheduler.clock.now_ms()
        try:
            engine.create(params, now, functools.partial(
                self._index.add, workflow, instance_id, InstanceStatus.QUEUED, now))
        except BaseException:  # not created: no engine stays to say it exists
            self._engines.pop((workflow, instance_id), None)
            engine.store.close()
            raise
        # Test sessions take it once it exists (a create retried after a failed commit
        # must not be mocked twice); its run reads their modifications once it starts.
        self._scheduler.modifiers.created(workflow, instance_id)
        engine.start()
        return engine

    async def delete(self, workflow: str, instance_id: str) -> None:
        """Stop and erase an instance."""
        output_gate.open_gate()  # what led here is on disk before anything goes
        self._settled.pop((workflow, instance_id))
        try:
            engine = self.engine(workflow, instance_id)
        except StorageError:  # a damaged file can still be deleted
            self._index.remove(workflow, instance_id)
            self.registration(workflow).namespace.remove(instance_id)
            return
        from_inside = engine.driving_here()
        engine.cancel_retry()
        await engine.halt("delete")
        engine.store.close()
        self._engines.pop((workflow, instance_id), None)
        self.registration(workflow).namespace.remove(instance_id)
        self._index.remove(workflow, instance_id)
        if from_inside:
            if engine.attempts.runs(asyncio.current_task()):
                raise asyncio.CancelledError  # a step callback: its run is cancelled already
            raise InstanceGone(f"instance {instance_id} deleted itself")

    async def delete_batch(self, workflow: str, ids: list[str]) -> BatchDeleteResult:
        """Delete each unique id once; report every id of ``ids`` in order."""
        deleted: dict[str, bool] = {}
        for instance_id in dict.fromkeys(ids):
            deleted[instance_id] = self.exists(workflow, instance_id)
            if deleted[instance_id]:
                await self.delete(workflow, instance_id)
        return {"deleted": [{"id": i} for i in ids if deleted[i]],
                "errors": [{"id": i, **NOT_FOUND} for i in ids if not deleted[i]]}

    def list(self, workflow: str, status: str | None = None) -> list[dict[str, Any]]:
        """``{id, status, created, modified}`` of ``workflow``'s instances, oldest first."""
        self.registration(workflow)
        return self._index.list(workflow, status)

    def resume_unfinished(self, only: str | None = None) -> None:
        """Start every unfinished instance (of ``only``, or of every registered workflow)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started on __aenter__ / first use
        for workflow in [only] if only else list(self._workflows):
            for instance_id in self._index.unfinished(workflow):
                try:
                    engine = self._open(workflow, instance_id, create=False)
                except StorageError:
                    continue  # listed with its problem; it never stops the others
                # The instance's own storage is the truth; the index may lag after a crash.
                self._scheduler.status_changed(engine)
                engine.start()

    async def close(self, drain_timeout: float) -> None:
        """Stop every engine where it is (after draining, if asked) and close its store."""
        engines = list(self._engines.values())
        if drain_timeout > 0:
            await asyncio.gather(*(e.drain(drain_timeout) for e in engines))
        for engine in engines:
            engine.cancel_retry()
            try:
                await engine.halt("shutdown")
            finally:
                engine.store.close()
        self._engines.clear()

    def stop_preparing(self) -> None:
        """Stop making instance files ahead and remove those not taken (idempotent)."""
        self._prepared.close()

    def close_idle(self) -> None:
        """Close every store; refuses if an engine is still running."""
        running = [e.id for e in self._engines.values() if e.running]
        if running:
            raise EmulatorError(
                f"instances {running} are still running: await emulator.close() to stop them")
        for engine in self._engines.values():
            engine.store.close()
        self._engines.clear()
