"""The JSON API over a project's workflows and instances: a route table of views, no HTTP.

Paths are relative to ``/__workflows/api`` (`API_PREFIX`):

    GET    /workflows                                  workflows with instance counts
    GET    /workflows/<name>                           one workflow
    DELETE /workflows/<name>                           delete all its instances
    GET    /workflows/<name>/instances[?status=s]      instances, oldest first
    POST   /workflows/<name>/instances                 {"id"?, "params"?} -> create
    GET    /workflows/<name>/instances/<id|latest>     status, step timeline, rollback section
    PATCH  /workflows/<name>/instances/<id>            {"action", "from"?, "rollback"?}
    DELETE /workflows/<name>/instances/<id>            delete
    POST   /workflows/<name>/instances/<id>/events/<type>   body = payload

Answers are ``{"success": true, "result": ...}`` or ``{"success": false, "errors": [{"code",
"message"}]}``. A known path asked with another method is refused with 405 and the methods it
accepts (`allowed_methods`); HEAD is answered as GET.
The dev server serves them over HTTP; the CLI calls `InstanceApi` in-process when no server runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import EmulatorError, InstanceNotFoundError, StorageError
from ..events import STATUSES, TERMINAL
from ..project import Project, Runtime
from .describe import describe_instance

if TYPE_CHECKING:
    from ..emulator import Instance, Workflow

API_PREFIX = "/__workflows/api"
ACTIONS = ("pause", "resume", "restart", "terminate")
CREATE_KEYS = ("id", "params")
ACTION_KEYS = ("action", "from", "rollback")


class ApiError(Exception):
    """A request the API refuses; ``status`` is the HTTP status to answer with.

    ``allow`` lists the methods the path accepts when the refusal is a 405.
    """

    def __init__(self, status: int, message: str, *, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow


@dataclass(frozen=True)
class ApiRequest:
    """One API call: ``path`` is relative to `API_PREFIX`, without its query; ``body`` is JSON."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None

    @classmethod
    def parse(cls, method: str, target: str, body: Any = None) -> ApiRequest:
        """A request for ``target``, a path that may carry a ``?query``."""
        split = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        return cls(method, split.path, query, body)

    @property
    def parts(self) -> list[str]:
        """The path's non-empty segments, unquoted."""
        return [unquote(p) for p in self.path.strip("/").split("/") if p]


@dataclass(frozen=True)
class ApiResponse:
    """An answer: the HTTP status, the JSON document and any extra headers (``Allow``)."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def success(cls, result: Any) -> ApiResponse:
        return cls(200, {"success": True, "result": result})

    @classmethod
    def failure(cls, status: int, message: str,
                headers: tuple[tuple[str, str], ...] = ()) -> ApiResponse:
        return cls(status, {"success": False, "errors": [{"code": 10001, "message": message}]},
                   headers)


class InstanceApi:
    """Instance operations as JSON-able results, over a running project.

    Args:
        runtime: the project and its emulator.
        foreground: after create/act/send-event, drive the instance until it ends, is
            paused, waits for an event, or waits for a timer further away than
            ``drive_timers_within`` seconds, before answering (the CLI without a server:
            nothing drives the instance once the command returns).
    """

    def __init__(self, runtime: Runtime, *, foreground: bool = False,
                 drive_timers_within: float = 60.0) -> None:
        self.rt = runtime
        self.foreground = foreground
        self.drive_timers_within = drive_timers_within

    async def handle(self, method: str, path: str, body: Any = None) -> ApiResponse:
        """Answer one call; ``path`` is relative to `API_PREFIX` (may carry a query)."""
        return await self.answer(ApiRequest.parse(method, path, body))

    async def answer(self, request: ApiRequest) -> ApiResponse:
        """Route ``request`` to its view; refusals and emulator errors become failures."""
        try:
            return ApiResponse.success(await self._route(request))
        except ApiError as exc:
            allow = (("allow", ", ".join(exc.allow)),) if exc.allow else ()
            return ApiResponse.failure(exc.status, str(exc), allow)
        except InstanceNotFoundError as exc:
            return ApiResponse.failure(404, str(exc))
        except StorageError as exc:  # the disk, not the request: try again once it is fixed
            return ApiResponse.failure(503, str(exc))
        except (EmulatorError, ValueError, TypeError) as exc:
            return ApiResponse.failure(400, str(exc))

    async def _route(self, request: ApiRequest) -> Any:
        parts = request.parts
        if not parts or parts[0] != "workflows":
            raise ApiError(404, f"no API route {request.path}; see {API_PREFIX}/workflows")
        for route in ROUTES:
            params = route.match(request.method, parts)
            if params is not None:
                return await route.view(self, request, params)
        allow = allowed_methods(parts)
        if allow:
            raise ApiError(405, f"{request.method} is not allowed on {request.path}; use "
                                f"{', '.join(allow)}", allow=allow)
        if len(parts) >= 4 and parts[2] == "instances":
            await self._instance(parts[1], parts[3])  # an unknown instance wins over the route
        raise ApiError(404, f"no API route {request.method} {request.path}")

    # -- workflow views ----------------------------------------------------------------------

    async def list_workflows(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """Every workflow of the project, with its instance counts by status."""
        return [await self._workflow_info(name) for name in self.rt.workflows]

    async def get_workflow(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """One workflow: binding, class, script and instance counts."""
        return await self._workflow_info(params["name"])

    async def delete_workflow(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """Delete every instance of the workflow; answer their ids."""
        wf = self._workflow(params["name"])
        ids = [row["id"] for row in await wf.list()]
        for instance_id in ids:
            await (await wf.get(instance_id)).delete()
        return {"deleted": ids}

    # -- instance views ----------------------------------------------------------------------

    async def list_instances(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """The workflow's instances, oldest first, optionally of one ``?status=``."""
        status = request.query.get("status")
        if status is not None and status not in STATUSES:
            raise ApiError(400, f'Looks like you have provided a invalid status "{status}". '
                           f"Valid statuses are: {', '.join(STATUSES[:-1])}")
        return list(await self._workflow(params["name"]).list(status=status))

    async def create_instance(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """Create an instance from ``{"id"?, "params"?}``."""
        body = _options(request.body, CREATE_KEYS, "create", '{"id"?: str, "params"?: any}')
        wf = self._workflow(params["name"])
        return await self._settled(await wf.create(id=body.get("id"), params=body.get("params")))

    async def get_instance(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """Status, step timeline with attempts, and the rollback section."""
        inst = await self._instance(params["name"], params["id"])
        return describe_instance(inst, await inst.status())

    async def act_on_instance(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """Pause, resume, restart (``from``) or terminate (``rollback``) an instance."""
        inst = await self._instance(params["name"], params["id"])
        body = _options(request.body, ACTION_KEYS, "instance action",
                        '{"action": str, "from"?: step, "rollback"?: bool}')
        action = body.get("action")
        if action not in ACTIONS:
            raise ApiError(400, f"Invalid action '{action}'. Must be one of: {', '.join(ACTIONS)}.")
        if body.get("rollback") is not None and action != "terminate":
            raise ApiError(400, "'rollback' is only valid when terminating.")
        if action == "pause":
            await inst.pause()
        elif action == "resume":
            await inst.resume()
        elif action == "terminate":
            await inst.terminate(rollback=bool(body.get("rollback")))
        else:
            await inst.restart(body.get("from"))
        return await self._settled(inst)

    async def delete_instance(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """Delete one instance."""
        inst = await self._instance(params["name"], params["id"])
        await inst.delete()
        return {"id": inst.id}

    async def send_event(self, request: ApiRequest, params: dict[str, str]) -> Any:
        """Deliver the body as the payload of an event of ``type``."""
        inst = await self._instance(params["name"], params["id"])
        await inst.send_event(params["type"], request.body)
        return await self._settled(inst)

    # -- lookups -----------------------------------------------------------------------------

    def _workflow(self, name: str) -> Workflow:
        wf = self.rt.workflows.get(name)
        if wf is None:
            raise unknown_workflow(self.rt.project, name)
        return wf

    async def _workflow_info(self, name: str) -> dict[str, Any]:
        return workflow_info(self.rt.project, name, await self._workflow(name).list())

    async def _instance(self, name: str, instance_id: str) -> Instance:
        wf = self._workflow(name)
        if instance_id == "latest":
            instance_id = latest_id(name, await wf.list())
        return await wf.get(instance_id)

    async def _settled(self, inst: Instance) -> dict[str, Any]:
        status: dict[str, Any] = await inst.status()
        if self.foreground and status["status"] not in TERMINAL | {"paused"}:
            if status["status"] == "waiting":
                # Parked by an earlier process: start it so it can consume what just arrived.
                # It may park again before we see "running", hence the short timeout.
                with contextlib.suppress(TimeoutError):
                    await inst.wait(until={"running", "queued"}, timeout=0.3)
            status = await inst.wait(until={"waiting", "paused"})
            # Timers fire only while a process drives the state directory: wait out the
            # near ones (retry delays, short sleeps) here.
            while status["status"] == "waiting":
                due = inst.next_timer_in()
                if due is None or due > self.drive_timers_within:
                    break
                import asyncio  # here: the CLI's read-only commands load this module

                await asyncio.sleep(due)
                with contextlib.suppress(TimeoutError):
                    await inst.wait(until={"running", "queued"}, timeout=1.0)
                status = await inst.wait(until={"waiting", "paused"})
        return {"id": inst.id, **status}


def _options(body: Any, accepted: tuple[str, ...], what: str, shape: str) -> dict[str, Any]:
    """``body`` as a dict of options, refusing any other shape and any key not in ``accepted``."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object {shape}, not {type(body).__name__}")
    unknown = sorted(set(body) - set(accepted))
    if unknown:
        raise ApiError(400, f"unknown {what} option(s) {unknown}: use {', '.join(accepted)}")
    return body


def unknown_workflow(project: Project, name: str) -> ApiError:
    """The 404 for a workflow the project does not define."""
    known = ", ".join(wf.name for wf in project.workflows) or "none"
    return ApiError(404, f'Workflow "{name}" not found (this project has: {known}, from '
                         f"{project.config_path}); pass --config to use another project")


def workflow_info(project: Project, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Workflow ``name``'s binding, class and script, and its instances (``rows``) by status."""
    cfg = project.workflow(name)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"name": name, "binding": cfg.binding, "class_name": cfg.class_name,
            "script_name": project.name, "instances": counts}


def latest_id(name: str, rows: list[dict[str, Any]]) -> str:
    """The id ``latest`` stands for: the newest of ``rows`` (oldest first)."""
    if not rows:
        raise ApiError(404, f'There are no instances of workflow "{name}"')
    return str(rows[-1]["id"])


View = Callable[[InstanceApi, ApiRequest, dict[str, str]], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """``method`` on a path ``pattern`` whose ``{placeholders}`` become the view's params."""

    method: str
    pattern: str
    view: View

    def match(self, method: str, parts: list[str]) -> dict[str, str] | None:
        """The placeholders' values if ``method`` and ``parts`` fit this route, else ``None``."""
        if method != self.method and not (method == "HEAD" and self.method == "GET"):
            return None
        return self.match_path(parts)

    def match_path(self, parts: list[str]) -> dict[str, str] | None:
        """The placeholders' values if ``parts`` fit this route's pattern, whatever the method."""
        return path_params(self.pattern, parts)


def path_params(pattern: str, parts: list[str]) -> dict[str, str] | None:
    """The values of ``pattern``'s ``{placeholders}`` if ``parts`` (a path split on ``/``)
    fits it, else ``None``."""
    segments = pattern.split("/")
    if len(segments) != len(parts):
        return None
    params: dict[str, str] = {}
    for segment, part in zip(segments, parts, strict=True):
        if segment.startswith("{"):
            params[segment.strip("{}")] = part
        elif segment != part:
            return None
    return params


ROUTES = (
    Route("GET", "workflows", InstanceApi.list_workflows),
    Route("GET", "workflows/{name}", InstanceApi.get_workflow),
    Route("DELETE", "workflows/{name}", InstanceApi.delete_workflow),
    Route("GET", "workflows/{name}/instances", InstanceApi.list_instances),
    Route("POST", "workflows/{name}/instances", InstanceApi.create_instance),
    Route("GET", "workflows/{name}/instances/{id}", InstanceApi.get_instance),
    Route("PATCH", "workflows/{name}/instances/{id}", InstanceApi.act_on_instance),
    Route("DELETE", "workflows/{name}/instances/{id}", InstanceApi.delete_instance),
    Route("POST", "workflows/{name}/instances/{id}/events/{type}", InstanceApi.send_event),
)


def allowed_methods(parts: list[str]) -> tuple[str, ...]:
    """The methods some route accepts on the path ``parts`` (HEAD wherever GET is); ``()`` if none."""
    methods = {route.method for route in ROUTES if route.match_path(parts) is not None}
    if "GET" in methods:
        methods.add("HEAD")
    return tuple(sorted(methods))
