"""The Local Explorer API (``/cdn-cgi/local/explorer/api``): wrangler's ``--local`` and the UI.

The paths, parameters, JSON shapes, pagination and error envelopes are those of the OpenAPI
document miniflare ships (``openapi.local.json`` inside ``dist/src/workers/local-explorer/
explorer.worker.js``) and of miniflare's own implementation of it:

    GET    /workflows                                       name, class_name, script_name
    GET    /workflows/<name>                                + instance counts by status
    DELETE /workflows/<name>                                delete every instance
    GET    /workflows/<name>/instances?page&per_page&status&date_start&date_end
    POST   /workflows/<name>/instances                      {"id"?, "params"?} -> {"id"}
    POST   /workflows/<name>/instances/batch/delete         {"instances": [id, ...]}
    GET    /workflows/<name>/instances/<id>                 status, steps, attempts
    PATCH  /workflows/<name>/instances/<id>/status          {"status", "from"?, "rollback"?}
    DELETE /workflows/<name>/instances/<id>
    POST   /workflows/<name>/instances/<id>/events/<type>   body = payload
    GET    /local/workers                                   this project's worker and bindings
    GET    /storage/kv/namespaces, /d1/database, /r2/buckets,
           /workers/durable_objects/namespaces              the project's resources (listed)
    GET    /storage/kv/namespaces/<id>/keys?prefix&cursor&limit    a KV namespace's keys
    GET    /storage/kv/namespaces/<id>/values/<key>         a value, as raw bytes
    POST   /d1/database/<id>/raw                            {"sql", "params"} or {"batch": [...]}

Answers are ``{"success", "errors", "messages", "result"}`` (and ``result_info`` for lists);
a failure is ``{"success": false, "errors": [{"code", "message"}], "messages": [],
"result": null}``, code 10501 for an unknown workflow or instance as in miniflare.

Rollback information is added as fields the official clients ignore: an instance's
``rollback`` (``{"outcome", "error"}``) and ``rollback_phase`` (trigger error and the
handlers' steps, in the order they ran), as `describe.describe_instance` builds them.

Every view goes through `InstanceApi` (the same lookups, actions and errors as
``/__workflows/api``) or the `Workflow` it wraps; this module only reshapes. No HTTP here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EmulatorError, InstanceNotFoundError, StorageError
from ..log_fold import StepRow
from .api_views import ApiRequest, ApiResponse, InstanceApi, path_params
from .describe import describe_instance

if TYPE_CHECKING:
    from ..emulator import Instance
    from ..project import Runtime

EXPLORER_PREFIX = "/cdn-cgi/local/explorer"
EXPLORER_API_PREFIX = EXPLORER_PREFIX + "/api"
NOT_FOUND = 10501
"""miniflare's ``WORKFLOW_ERROR_NOT_FOUND``."""
INVALID_DATE_RANGE = 10502
KV_KEY_NOT_FOUND = 10009
GENERIC = 10001
UNEXPECTED = 10000
LIST_STATUSES = ("queued", "running", "paused", "errored", "terminated", "complete",
                 "waitingForPause", "waiting")
"""The statuses an instance list may filter on and a workflow counts, in the document's order."""
CHANGE_STATUSES = ("pause", "resume", "terminate", "restart")
STEP_TYPES = {"do": "step", "sleep": "sleep", "wait": "waitForEvent"}
"""The emulator's step kinds as the Explorer names them (rollback handlers are extra)."""


@dataclass(frozen=True)
class RawAnswer:
    """An answer that is not JSON: a KV value's bytes."""

    status: int
    body: bytes
    content_type: str = "application/octet-stream"


class ExplorerError(Exception):
    """A refusal: the HTTP ``status`` and the envelope's error ``code``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def success(result: Any, **extra: Any) -> ApiResponse:
    """miniflare's ``wrapResponse``, plus top-level ``extra`` (``result_info``)."""
    return ApiResponse(200, {"success": True, "errors": [], "messages": [], "result": result,
                             **extra})


def failure(status: int, code: int, message: str) -> ApiResponse:
    """miniflare's ``errorResponse``."""
    return ApiResponse(status, {"success": False, "errors": [{"code": code, "message": message}],
                                "messages": [], "result": None})


def iso(ms: float | None) -> str | None:
    """Epoch milliseconds as the API's UTC ISO 8601 timestamp (``...T12:00:00.000Z``)."""
    if ms is None:
        return None
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ExplorerApi:
    """The Local Explorer views over a running project, through its `InstanceApi`."""

    def __init__(self, runtime: Runtime, instances: InstanceApi) -> None:
        self.rt = runtime
        self.instances = instances

    async def handle(self, method: str, target: str, raw: bytes) -> ApiResponse | RawAnswer:
        """Answer one call; ``target`` is relative to `EXPLORER_API_PREFIX` (may carry a query)."""
        request = ApiRequest.parse(method, target, raw)
        parts = request.parts
        for route in EXPLORER_ROUTES:
            params = route.match(method, parts)
            if params is not None:
                try:
                    return await route.view(self, request, params)
                except ExplorerError as exc:
                    return failure(exc.status, exc.code, str(exc))
                except InstanceNotFoundError:
                    return failure(404, NOT_FOUND,
                                   f"Workflow instance '{params.get('id', '')}' not found.")
                except StorageError as exc:
                    return failure(503, GENERIC, str(exc))
                except (EmulatorError, ValueError, TypeError) as exc:
                    return failure(400, GENERIC, str(exc))
                except Exception as exc:  # as miniflare's onError: the message, never a crash
                    return failure(500, UNEXPECTED, f"{type(exc).__name__}: {exc}")
        return failure(404, GENERIC, f"No route for {method} {EXPLORER_API_PREFIX}{request.path}")

    # -- workflows ---------------------------------------------------------------------------

    async def list_workflows(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-list-workflows``."""
        rows = [{"name": wf.name, "class_name": wf.class_name,
                 "script_name": self.rt.project.name} for wf in self.rt.project.workflows]
        return success(rows, result_info={"count": len(rows)})

    async def get_workflow(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-get-workflow-details``: every status counted, zero included."""
        info = await self._call("GET", f"/workflows/{self._known(params['name'])}")
        counts = dict.fromkeys(LIST_STATUSES, 0) | info["instances"]
        return success({"name": info["name"], "class_name": info["class_name"],
                        "script_name": info["script_name"], "instances": counts})

    async def delete_workflow(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-delete-workflow``: every instance of it."""
        await self._call("DELETE", f"/workflows/{self._known(params['name'])}")
        return success({"status": "ok", "success": True})

    # -- instances ---------------------------------------------------------------------------

    async def list_instances(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-list-instances``: newest first, filtered, one page of it."""
        page = _number(request.query, "page", 1, minimum=1)
        per_page = _number(request.query, "per_page", 25, minimum=1, maximum=100)
        status = request.query.get("status")
        if status is not None and status not in LIST_STATUSES:
            raise ExplorerError(400, GENERIC, "status: Invalid option: expected one of "
                                + "|".join(f'"{s}"' for s in LIST_STATUSES))
        start = _datetime(request.query, "date_start")
        end = _datetime(request.query, "date_end")
        if start is not None and end is not None and start > end:
            raise ExplorerError(400, INVALID_DATE_RANGE, (
                "'date_start' must not be after 'date_end'. Update 'date_start' or 'date_end' "
                "so 'date_start' is before or equal to 'date_end'."))
        rows = list(reversed(await self._call(
            "GET", f"/workflows/{self._known(params['name'])}/instances")))
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        chosen = [r for r in rows if (status is None or r["status"] == status)
                  and (start is None or r["created"] >= start)
                  and (end is None or r["created"] <= end)]
        offset = (page - 1) * per_page
        result = [{"id": r["id"], "status": r["status"], "created_on": iso(r["created"])}
                  for r in chosen[offset:offset + per_page]]
        return success(result, result_info={
            "page": page, "per_page": per_page, "total_count": len(chosen),
            "total_pages": max(1, math.ceil(len(chosen) / per_page)), "status_counts": counts})

    async def create_instance(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-create-instance``: a body that is not JSON counts as empty (miniflare)."""
        name = self._known(params["name"])
        body = _json(request.body, default={})
        options = ({k: body[k] for k in ("id", "params") if body.get(k) is not None}
                   if isinstance(body, dict) else {})
        created = await self._call("POST", f"/workflows/{name}/instances", options)
        return success({"id": created["id"]})

    async def get_instance(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-get-instance-details``, with the rollback phase as extra fields."""
        inst = await self._instance(params["name"], params["id"])
        status = await inst.status()
        described = describe_instance(inst, status)
        steps = [_step(row) for row in inst.steps() if row.kind in STEP_TYPES]
        details: dict[str, Any] = {
            # "id" is required by the document's schema (miniflare leaves it out)
            "id": inst.id, "status": status["status"], "params": None,
            "queued": iso(described["queued"]), "start": iso(described["start"]),
            "end": iso(described["end"]), "output": status.get("output"),
            "steps": steps, "step_count": len(steps),
            # Extra: the saga's rollback phase (the official clients ignore these).
            "rollback": status.get("rollback"),
            "rollback_phase": _rollback_phase(described["rollback_phase"]),
        }
        if status.get("error") is not None:  # the document's "error" is an object, never null
            details["error"] = status["error"]
        return success(details)

    async def change_status(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``wor-change-status-workflow-instance``: pause, resume, terminate (rollback) or
        restart (from a step); answers the status it leaves the instance in."""
        body = _json(request.body, default=None)
        if not isinstance(body, dict):
            raise ExplorerError(400, GENERIC, "Invalid JSON request body" if body is _INVALID
                                else "Invalid input: expected object")
        if "rollback" in body and body.get("status") != "terminate":
            raise ExplorerError(400, GENERIC, "'rollback' is only valid when terminating.")
        action = body.get("status")
        if action not in CHANGE_STATUSES:
            raise ExplorerError(400, GENERIC, "status: Invalid option: expected one of "
                                + "|".join(f'"{s}"' for s in CHANGE_STATUSES))
        name = self._known(params["name"])
        await self._instance(name, params["id"])
        options: dict[str, Any] = {"action": action}
        if action == "restart" and body.get("from") is not None:
            options["from"] = body["from"]
        if action == "terminate" and body.get("rollback") is True:
            options["rollback"] = True
        settled = await self._call("PATCH", f"/workflows/{name}/instances/{params['id']}",
                                   options)
        return success({"status": settled["status"],
                        "timestamp": iso(self.rt.emulator.clock.now_ms()),
                        "rollback": settled.get("rollback")})

    async def delete_instance(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-delete-instance``."""
        inst = await self._instance(params["name"], params["id"])
        await self._call("DELETE", f"/workflows/{inst.workflow}/instances/{inst.id}")
        return success({"success": True})

    async def delete_batch(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-batch-delete-instances``: ``{"deleted": [{id}], "errors": [...]}``."""
        name = self._known(params["name"])
        body = _json(request.body, default=None)
        ids = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ExplorerError(400, GENERIC,
                                "instances: expected an array of 1 to 100 instance ids")
        return success(dict(await self.rt.workflows[name].delete_batch(ids)))

    async def send_event(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workflows-send-instance-event``: a body that is not JSON sends no payload."""
        inst = await self._instance(params["name"], params["id"])
        payload = _json(request.body, default=None)
        await self._call("POST", f"/workflows/{inst.workflow}/instances/{inst.id}/events/"
                                 f"{params['type']}", None if payload is _INVALID else payload)
        return success({"success": True})

    # -- the worker and its resources --------------------------------------------------------

    async def list_workers(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``local-explorer-list-workers``: this project, as miniflare describes a worker."""
        project = self.rt.project
        configs = project.bindings
        bindings = {
            "kv": [{"id": kv.id, "bindingName": kv.binding} for kv in configs.kv_namespaces],
            "d1": [{"id": d1.database_id, "bindingName": d1.binding}
                   for d1 in configs.d1_databases],
            "r2": [{"id": r2.bucket_name, "bindingName": r2.binding} for r2 in configs.r2_buckets],
            "do": [{"id": f"{project.name}-{do.class_name}", "bindingName": do.binding,
                    "className": do.class_name, "scriptName": project.name, "useSqlite": True}
                   for do in configs.durable_objects],
            "workflows": [{"id": wf.name, "bindingName": wf.binding, "className": wf.class_name,
                           "scriptName": project.name} for wf in project.workflows],
            "sendEmail": [], "flagship": [],
        }
        scope = hashlib.sha256(
            f"local-explorer:persistence-scope:v1\0{project.root}".encode()).hexdigest()
        return success([{"isSelf": True, "name": project.name, "persistenceScope": scope,
                         "bindings": bindings, "triggers": {"crons": []}}])

    async def list_kv(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workers-kv-namespace-list-namespaces`` (listing only)."""
        rows = sorted(({"id": kv.id, "title": kv.binding}
                       for kv in self.rt.project.bindings.kv_namespaces), key=lambda r: r["id"])
        return success(rows, result_info={"count": len(rows)})

    async def list_d1(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``d1-list-databases`` (listing only; ``?name=`` filters)."""
        wanted = request.query.get("name", "").lower()
        rows = [{"name": d1.database_name, "uuid": d1.database_id, "version": "production"}
                for d1 in self.rt.project.bindings.d1_databases
                if wanted in d1.database_name.lower()]
        return success(rows, result_info={"count": len(rows)})

    async def list_r2(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``r2-list-buckets`` (listing only)."""
        rows = sorted(({"name": r2.bucket_name} for r2 in self.rt.project.bindings.r2_buckets),
                      key=lambda r: r["name"])
        return success({"buckets": rows},
                       result_info={"count": len(rows), "total_count": len(rows)})

    async def list_do(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``durable-objects-namespace-list-namespaces`` (listing only)."""
        script = self.rt.project.name
        rows = [{"id": f"{script}-{do.class_name}", "name": f"{script}_{do.class_name}",
                 "script": script, "class": do.class_name, "use_sqlite": True}
                for do in self.rt.project.bindings.durable_objects]
        return success(rows, result_info={"count": len(rows)})

    async def list_kv_keys(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``workers-kv-namespace-list-a-namespace'-s-keys``: one page of keys, by name."""
        namespace = self._kv(params["id"])
        options: dict[str, Any] = {k: request.query[k] for k in ("prefix", "cursor")
                                   if request.query.get(k)}
        if "limit" in request.query:
            options["limit"] = _number(request.query, "limit", 1000, minimum=10, maximum=1000)
        page = await namespace.list(options)
        keys = [dict(key) for key in page["keys"]]
        return success(keys, result_info={"count": len(keys), "cursor": page.get("cursor", "")})

    async def get_kv_value(self, request: ApiRequest, params: dict[str, str]) -> RawAnswer:
        """``workers-kv-namespace-read-key-value-pair``: the value's bytes."""
        value = await self._kv(params["id"]).get(params["key"], "arrayBuffer")
        if value is None:
            raise ExplorerError(404, KV_KEY_NOT_FOUND, "Not Found")
        return RawAnswer(200, bytes(value))

    async def d1_raw(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """``d1-raw-database-query``: each statement's columns, rows (as lists) and meta, in
        one transaction. A statement that returns no row has no column names here."""
        database = self._d1(params["id"])
        body = _json(request.body, default=None)
        queries = body.get("batch") if isinstance(body, dict) and "batch" in body else [body]
        if not isinstance(queries, list) or not queries or not all(
                isinstance(q, dict) and isinstance(q.get("sql"), str) for q in queries):
            raise ExplorerError(400, GENERIC, 'the body must be {"sql", "params"?} or '
                                              '{"batch": [{"sql", "params"?}, ...]}')
        try:
            results = await database.batch([database.prepare(q["sql"]).bind(
                *(q.get("params") or [])) for q in queries])
        except Exception as exc:  # D1's error text, as miniflare relays it
            raise ExplorerError(400, GENERIC, str(exc)) from exc
        return success([_d1_rows(result) for result in results])

    async def empty_list(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """A resource type the emulator does not have (Flagship, email): nothing to list."""
        return success([], result_info={"count": 0})

    # -- lookups -----------------------------------------------------------------------------

    def _known(self, name: str) -> str:
        if name not in self.rt.workflows:
            raise ExplorerError(404, NOT_FOUND, f"Workflow '{name}' not found.")
        return name

    async def _instance(self, name: str, instance_id: str) -> Instance:
        wf = self.rt.workflows[self._known(name)]
        try:
            return await wf.get(instance_id)
        except (InstanceNotFoundError, EmulatorError) as exc:
            raise ExplorerError(404, NOT_FOUND,
                                f"Workflow instance '{instance_id}' not found.") from exc

    def _kv(self, namespace_id: str) -> Any:
        """The project's KV namespace with that id (a double stands in as it is)."""
        cfg = next((k for k in self.rt.project.bindings.kv_namespaces if k.id == namespace_id),
                   None)
        return self._opened(cfg.binding if cfg else None, f"KV namespace '{namespace_id}'")

    def _d1(self, database_id: str) -> Any:
        """The project's D1 database with that id."""
        cfg = next((d for d in self.rt.project.bindings.d1_databases
                    if d.database_id == database_id), None)
        return self._opened(cfg.binding if cfg else None, f"D1 database '{database_id}'")

    def _opened(self, binding: str | None, what: str) -> Any:
        stores = self.rt.bindings.values if self.rt.bindings is not None else {}
        if binding is None or binding not in stores:
            raise ExplorerError(404, GENERIC, f"{what} not found.")
        return stores[binding]

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        """The `InstanceApi` view for ``method path``: its result, or its refusal re-enveloped."""
        answer = await self.instances.answer(ApiRequest.parse(method, path, body))
        if answer.status != 200:
            message = answer.body["errors"][0]["message"]
            code = NOT_FOUND if answer.status == 404 else GENERIC
            raise ExplorerError(answer.status, code, message)
        return answer.body["result"]


_INVALID = object()
"""What `_json` answers for a body that is not JSON."""


def _json(raw: Any, default: Any) -> Any:
    """The raw body as JSON: ``default`` when empty, `_INVALID` when it does not parse."""
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        return default
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _INVALID


def _number(query: dict[str, str], key: str, default: int, *, minimum: int,
            maximum: int | None = None) -> int:
    """A numeric query parameter, checked as the document's schema says."""
    raw = query.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ExplorerError(400, GENERIC,
                            f'{key}: Expected query param to be number but received "{raw}"'
                            ) from None
    if value < minimum:
        raise ExplorerError(400, GENERIC, f"{key}: Too small: expected number to be >={minimum}")
    if maximum is not None and value > maximum:
        raise ExplorerError(400, GENERIC, f"{key}: Too big: expected number to be <={maximum}")
    return int(value)


def _datetime(query: dict[str, str], key: str) -> float | None:
    """An ISO 8601 UTC query parameter (``...Z``, no offset) as epoch milliseconds."""
    raw = query.get(key)
    if raw is None:
        return None
    if not raw.endswith("Z") or "T" not in raw:
        raise ExplorerError(400, GENERIC, f"{key}: Invalid ISO datetime")
    try:
        moment = dt.datetime.fromisoformat(raw[:-1] + "+00:00")
    except ValueError:
        raise ExplorerError(400, GENERIC, f"{key}: Invalid ISO datetime") from None
    return moment.timestamp() * 1000


def _step(row: StepRow) -> dict[str, Any]:
    """A forward step as miniflare's instance details show it (``name`` is ``name-count``)."""
    done = row.state == "success"
    base: dict[str, Any] = {"name": row.label, "start": iso(row.started_at),
                            "end": iso(row.ended_at), "type": STEP_TYPES[row.kind]}
    if row.kind == "sleep":
        return {**base, "finished": row.ended_at is not None, "error": None}
    if row.kind == "wait":
        return {**base, "finished": row.ended_at is not None,
                "error": row.error.to_json() if row.error else None,
                "output": row.output if done else None}
    step = {**base, "success": True if done else False if row.state == "failure" else None,
            "config": row.config, "attempts": [_attempt(a) for a in row.attempt_log]}
    if done:
        step["output"] = row.output
    return step


def _attempt(attempt: Any) -> dict[str, Any]:
    success_ = {"success": True, "failure": False}.get(attempt.state)
    return {"start": iso(attempt.started_at), "end": iso(attempt.ended_at),
            "success": success_, "error": attempt.error.to_json() if attempt.error else None}


def _d1_rows(result: dict[str, Any]) -> dict[str, Any]:
    """One `D1Database.batch` result as the raw query's ``{results: {columns, rows}}``."""
    objects = result["results"]
    columns = list(objects[0]) if objects else []
    return {"success": result["success"], "meta": dict(result["meta"]),
            "results": {"columns": columns, "rows": [list(row.values()) for row in objects]}}


def _rollback_phase(phase: dict[str, Any] | None) -> dict[str, Any] | None:
    """`describe`'s rollback section with ISO timestamps on its handlers and attempts."""
    if phase is None:
        return None
    steps = [{**s, "start": iso(s["start"]), "end": iso(s["end"]),
              "attempts": [{**a, "start": iso(a["start"]), "end": iso(a["end"])}
                           for a in s["attempts"]]} for s in phase["steps"]]
    return {**phase, "steps": steps}


ExplorerView = Callable[[ExplorerApi, ApiRequest, dict[str, str]],
                        Awaitable[ApiResponse | RawAnswer]]


@dataclass(frozen=True)
class ExplorerRoute:
    """``method`` on a path ``pattern`` whose ``{placeholders}`` become the view's params."""

    method: str
    pattern: str
    view: ExplorerView

    def match(self, method: str, parts: list[str]) -> dict[str, str] | None:
        """The placeholders' values if ``method`` and ``parts`` fit this route, else ``None``."""
        return path_params(self.pattern, parts) if method == self.method else None


EXPLORER_ROUTES = (
    ExplorerRoute("GET", "workflows", ExplorerApi.list_workflows),
    ExplorerRoute("GET", "workflows/{name}", ExplorerApi.get_workflow),
    ExplorerRoute("DELETE", "workflows/{name}", ExplorerApi.delete_workflow),
    ExplorerRoute("GET", "workflows/{name}/instances", ExplorerApi.list_instances),
    ExplorerRoute("POST", "workflows/{name}/instances", ExplorerApi.create_instance),
    ExplorerRoute("POST", "workflows/{name}/instances/batch/delete", ExplorerApi.delete_batch),
    ExplorerRoute("GET", "workflows/{name}/instances/{id}", ExplorerApi.get_instance),
    ExplorerRoute("DELETE", "workflows/{name}/instances/{id}", ExplorerApi.delete_instance),
    ExplorerRoute("PATCH", "workflows/{name}/instances/{id}/status", ExplorerApi.change_status),
    ExplorerRoute("POST", "workflows/{name}/instances/{id}/events/{type}",
                  ExplorerApi.send_event),
    ExplorerRoute("GET", "local/workers", ExplorerApi.list_workers),
    ExplorerRoute("GET", "storage/kv/namespaces", ExplorerApi.list_kv),
    ExplorerRoute("GET", "storage/kv/namespaces/{id}/keys", ExplorerApi.list_kv_keys),
    ExplorerRoute("GET", "storage/kv/namespaces/{id}/values/{key}", ExplorerApi.get_kv_value),
    ExplorerRoute("POST", "d1/database/{id}/raw", ExplorerApi.d1_raw),
    ExplorerRoute("GET", "d1/database", ExplorerApi.list_d1),
    ExplorerRoute("GET", "r2/buckets", ExplorerApi.list_r2),
    ExplorerRoute("GET", "workers/durable_objects/namespaces", ExplorerApi.list_do),
    ExplorerRoute("GET", "flagship/apps", ExplorerApi.empty_list),
    ExplorerRoute("GET", "local/email/routing", ExplorerApi.empty_list),
    ExplorerRoute("GET", "local/email/sending", ExplorerApi.empty_list),
)
