"""The read-only API calls (``list``, ``describe``) answered from a `StateReader` snapshot.

They need no lock, import nothing of the project's code and write nothing, so they work
while another process drives the state directory, and on a directory they cannot write.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..devserver.describe import describe_instance
from ..errors import EmulatorError
from ..project import Project
from ..state_reader import StateReader
from .client import Call, CliError


def snapshot_call(project: Project, reader: StateReader) -> Call:
    """``call(method, path, body)`` for the GET routes, from ``reader``."""

    async def call(method: str, path: str, body: Any = None) -> Any:
        if method != "GET":
            raise CliError(f"{method} {path} changes state: it is not a read-only command")
        split = urlsplit(path)
        parts = [unquote(p) for p in split.path.strip("/").split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            return await _answer(project, reader, parts, query)
        except EmulatorError as exc:
            raise CliError(str(exc)) from exc

    return call


async def _answer(project: Project, reader: StateReader, parts: list[str],
                  query: dict[str, str]) -> Any:
    if parts == ["workflows"]:
        return [_workflow_info(project, reader, wf.name) for wf in project.workflows]
    if len(parts) < 2 or parts[0] != "workflows":
        raise CliError(f"no read-only route /{'/'.join(parts)}")
    name = parts[1]
    if name not in {wf.name for wf in project.workflows}:
        known = ", ".join(wf.name for wf in project.workflows) or "none"
        raise CliError(f'Workflow "{name}" not found (this project has: {known}, from '
                       f"{project.config_path}); pass --config to use another project")
    if len(parts) == 2:
        return _workflow_info(project, reader, name)
    if len(parts) == 3 and parts[2] == "instances":
        return reader.instances(name, query.get("status"))
    if len(parts) == 4 and parts[2] == "instances":
        instance_id = parts[3]
        if instance_id == "latest":
            rows = reader.instances(name)
            if not rows:
                raise CliError(f'There are no instances of workflow "{name}"')
            instance_id = rows[-1]["id"]
        snapshot = reader.instance(name, instance_id)
        return describe_instance(snapshot, await snapshot.status())
    raise CliError(f"no read-only route /{'/'.join(parts)}")


def _workflow_info(project: Project, reader: StateReader, name: str) -> dict[str, Any]:
    cfg = project.workflow(name)
    counts: dict[str, int] = {}
    for row in reader.instances(name):
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"name": name, "binding": cfg.binding, "class_name": cfg.class_name,
            "script_name": project.name, "instances": counts}
