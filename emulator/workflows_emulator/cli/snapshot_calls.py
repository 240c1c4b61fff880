"""The read-only API calls (``list``, ``describe``) answered from a `StateReader` snapshot.

They need no lock, import nothing of the project's code and write nothing, so they work
while another process drives the state directory, and on a directory they cannot write.
The answers are the JSON API's (`api_views`), built by the same functions.
"""

from __future__ import annotations

from typing import Any

from ..devserver.api_views import (
    ApiError,
    ApiRequest,
    latest_id,
    unknown_workflow,
    workflow_info,
)
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
        request = ApiRequest.parse(method, path)
        try:
            return await _answer(project, reader, request)
        except (ApiError, EmulatorError) as exc:
            raise CliError(str(exc)) from exc

    return call


async def _answer(project: Project, reader: StateReader, request: ApiRequest) -> Any:
    parts = request.parts
    if parts == ["workflows"]:
        return [workflow_info(project, wf.name, reader.instances(wf.name))
                for wf in project.workflows]
    if len(parts) < 2 or parts[0] != "workflows" or len(parts) > 4 or (
            len(parts) > 2 and parts[2] != "instances"):
        raise CliError(f"no read-only route {request.path}")
    name = parts[1]
    if name not in {wf.name for wf in project.workflows}:
        raise unknown_workflow(project, name)
    if len(parts) == 2:
        return workflow_info(project, name, reader.instances(name))
    if len(parts) == 3:
        return reader.instances(name, request.query.get("status"))
    instance_id = parts[3]
    if instance_id == "latest":
        instance_id = latest_id(name, reader.instances(name))
    snapshot = reader.instance(name, instance_id)
    return describe_instance(snapshot, await snapshot.status())
