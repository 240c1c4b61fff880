"""`StateReader`: a state directory read without its lock, without writing, without running.

What ``list`` and ``describe`` show while another process drives the directory (or none
does): each instance is read from its own file inside one read transaction, so what is shown
is one consistent commit of it. Nothing is created, migrated, repaired or resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .durable_object import DurableObjectStorage
from .errors import DamagedStateError, EmulatorError, InstanceNotFoundError, StorageError
from .instance_store import SCHEMA_VERSION as INSTANCE_VERSION
from .instance_store import InstanceStore
from .log_fold import StepRow, steps_in_start_order
from .records import InstanceMeta


class InstanceSnapshot:
    """One instance as of one commit: the read side of `Instance`."""

    def __init__(self, workflow: str, instance_id: str, meta: InstanceMeta,
                 events: list[dict[str, Any]], steps: list[StepRow]) -> None:
        self.workflow = workflow
        self.id = instance_id
        self.meta = meta
        self._events = events
        self._steps = steps

    async def status(self) -> dict[str, Any]:
        return self.meta.status_json()

    def instance_events(self) -> list[dict[str, Any]]:
        return self._events

    def steps(self) -> list[StepRow]:
        return self._steps


class StateReader:
    """Reads instances of ``state_dir``.

    Raises:
        StorageError: on reading an instance whose file cannot be read.
    """

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)

    def _instances_root(self) -> Path:
        return self.state_dir / "instances"

    def instances(self, workflow: str, status: str | None = None) -> list[dict[str, Any]]:
        """``{id, status, created, modified}`` of ``workflow``'s instances, oldest first.

        From the index when it is readable and agrees with the files, else from the files.
        """
        rows = self._from_index(workflow)
        if rows is None:
            rows = self._from_files(workflow)
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        return rows

    def _from_index(self, workflow: str) -> list[dict[str, Any]] | None:
        # The index's module loads for listing only: describing an instance reads its file.
        from .instance_index import INDEX_NAME, SCHEMA_VERSION, instance_files, listed_row

        path = self.state_dir / INDEX_NAME
        try:
            index = DurableObjectStorage(path, "", SCHEMA_VERSION, read_only=True)
        except EmulatorError:
            return None  # missing, damaged or of another version: the files say
        try:
            got = index.sql.exec(
                "SELECT id, status, created, modified, problem FROM instances "
                "WHERE workflow = ? ORDER BY created, id", workflow).raw()
        except StorageError:
            return None
        finally:
            index.close()
        on_disk = {iid for wf, iid, _ in instance_files(self._instances_root()) if wf == workflow}
        if {r[0] for r in got} != on_disk:
            return None  # the index lags (a crash, or a writer about to reconcile it)
        return [listed_row(*row) for row in got]

    def _from_files(self, workflow: str) -> list[dict[str, Any]]:
        from .instance_index import file_row, instance_files, listed_row

        rows: list[dict[str, Any]] = []
        for wf, iid, path in instance_files(self._instances_root()):
            found = file_row(path) if wf == workflow else None
            if found is not None:
                rows.append(listed_row(iid, *found))
        rows.sort(key=lambda r: (r["created"], r["id"]))
        return rows

    def instance(self, workflow: str, instance_id: str) -> InstanceSnapshot:
        """Instance ``instance_id`` of ``workflow`` as of its last commit.

        Raises:
            InstanceNotFoundError: there is no such instance.
            StorageError: its file cannot be read (`DamagedStateError` if damaged).
        """
        path = self._instances_root() / workflow / f"{instance_id}.sqlite"
        if "/" in instance_id or not path.is_file():
            raise InstanceNotFoundError(f"instance.not_found: no instance {instance_id!r}")
        storage = DurableObjectStorage(path, "", INSTANCE_VERSION, read_only=True)
        try:
            with storage.transaction():  # one snapshot: the meta and the log of one commit
                store = InstanceStore(storage)
                data = storage.get("meta")
                if data is None:
                    raise InstanceNotFoundError(f"instance.not_found: no instance {instance_id!r}")
                try:
                    meta = InstanceMeta.from_json(data)
                except (KeyError, TypeError, ValueError) as exc:
                    raise DamagedStateError(path, f"its metadata cannot be read ({exc!r})") from exc
                store.load()
                events = store.entries(instance_level=True)
        finally:
            storage.close()
        return InstanceSnapshot(workflow, instance_id, meta, events,
                                steps_in_start_order(store.rows.values()))
