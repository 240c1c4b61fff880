"""`examine` and `quarantine`: find the state files that cannot be read, and set them aside.

``workflows-emulator doctor`` runs these. Examining only reads (no lock needed); setting
aside moves each damaged file, with its WAL files, into ``<state>/quarantine/<workflow>/``,
where it can be inspected, and the index forgets it on the next open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .durable_object import DurableObjectStorage
from .errors import EmulatorError
from .instance_index import INDEX_NAME, instance_files, problem_of, set_aside
from .instance_index import SCHEMA_VERSION as INDEX_VERSION
from .instance_store import SCHEMA_VERSION as INSTANCE_VERSION
from .instance_store import InstanceStore
from .records import InstanceMeta


@dataclass(frozen=True)
class Finding:
    """One state file that cannot be used, and why."""

    path: Path
    problem: str
    workflow: str | None = None
    """The instance's workflow (``None`` for the index)."""
    instance_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "workflow": self.workflow, "id": self.instance_id,
                "problem": self.problem}


def _quick_check(storage: DurableObjectStorage) -> str | None:
    """What SQLite's ``quick_check`` finds wrong in ``storage`` (its first three findings)."""
    check = [str(r[0]) for r in storage.sql.exec("PRAGMA quick_check").raw()]
    return None if check == ["ok"] else "SQLite's quick_check failed: " + "; ".join(check[:3])


def _check_instance(path: Path) -> str | None:
    """Why the instance file ``path`` cannot be used, or ``None`` if it can."""
    try:
        storage = DurableObjectStorage(path, "", INSTANCE_VERSION, read_only=True)
    except EmulatorError as exc:
        return problem_of(exc)
    try:
        with storage.transaction():
            damage = _quick_check(storage)
            if damage is not None:
                return damage
            data = storage.get("meta")
            if data is None:
                return "it has no instance metadata (a create cut off before it finished)"
            InstanceMeta.from_json(data)
            InstanceStore(storage).load()
    except EmulatorError as exc:
        return problem_of(exc)
    except (KeyError, TypeError, ValueError) as exc:
        return f"its contents cannot be read ({type(exc).__name__}: {exc})"
    finally:
        storage.close()
    return None


def _check_index(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        storage = DurableObjectStorage(path, "", INDEX_VERSION, read_only=True)
    except EmulatorError as exc:
        return problem_of(exc) + " (it is rebuilt from the instance files on the next open)"
    try:
        damage = _quick_check(storage)
    except EmulatorError as exc:
        return problem_of(exc)
    finally:
        storage.close()
    return None if damage is None else damage + " (it is rebuilt from the instance files on the next open)"


def examine(state_dir: Path) -> list[Finding]:
    """Every state file of ``state_dir`` that cannot be used, the index first."""
    findings: list[Finding] = []
    index_problem = _check_index(state_dir / INDEX_NAME)
    if index_problem is not None:
        findings.append(Finding(state_dir / INDEX_NAME, index_problem))
    for workflow, instance_id, path in instance_files(state_dir / "instances"):
        problem = _check_instance(path)
        if problem is not None:
            findings.append(Finding(path, problem, workflow, instance_id))
    return findings


def quarantine(state_dir: Path, findings: list[Finding]) -> list[tuple[Finding, Path]]:
    """Move each finding's file (and its WAL files) into the quarantine folder.

    Call it while holding the state directory's lock. Returns where each file went.
    """
    moved: list[tuple[Finding, Path]] = []
    for finding in findings:
        if finding.path.exists():
            moved.append((finding, set_aside(state_dir, finding.path,
                                             finding.workflow or "index")))
    return moved
