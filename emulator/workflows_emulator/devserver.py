"""``workflows-emulator dev``: the project's fetch handler over HTTP, plus a JSON API for instances.

The API lives under ``/__workflows/api`` (the rest of the URL space is the Worker's):

    GET    /workflows                                  workflows with instance counts
    GET    /workflows/<name>                           one workflow
    DELETE /workflows/<name>                           delete all its instances
    GET    /workflows/<name>/instances[?status=s]      instances, oldest first
    POST   /workflows/<name>/instances                 {"id"?, "params"?} -> create
    GET    /workflows/<name>/instances/<id|latest>     status, step timeline, rollback section
    PATCH  /workflows/<name>/instances/<id>            {"action", "from"?, "rollback"?}
    DELETE /workflows/<name>/instances/<id>            delete
    POST   /workflows/<name>/instances/<id>/events/<type>   body = payload

Answers are ``{"success": true, "result": ...}`` or ``{"success": false, "errors": [{"message"}]}``.
The CLI uses the same `InstanceApi` in-process when no server is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .emulator import Instance
from .errors import EmulatorError, InstanceNotFoundError, ProjectConfigError
from .events import STATUSES, TERMINAL
from .project import Project, Runtime, open_runtime
from .workers_shim.env import ExecutionContext
from .workers_shim.http import Request, Response

API_PREFIX = "/__workflows/api"
ACTIONS = ("pause", "resume", "restart", "terminate")
MAX_BODY = 10 << 20
LOCK_FILE = "devserver.json"
Result = tuple[int, Any]


class ApiError(Exception):
    """A request the API refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class InstanceApi:
    """Instance operations as JSON-able results, over a running project.

    Args:
        runtime: the project and its emulator.
        foreground: after create/act/send-event, drive the instance until it is terminal,
            waiting or paused before answering (the CLI without a server).
    """

    def __init__(self, runtime: Runtime, *, foreground: bool = False) -> None:
        self.rt = runtime
        self.foreground = foreground

    async def handle(self, method: str, path: str, body: Any = None) -> Result:
        """Answer one API call; ``path`` is relative to `API_PREFIX` (may carry a query)."""
        try:
            return 200, {"success": True, "result": await self._route(method, path, body)}
        except ApiError as exc:
            return exc.status, _fail(str(exc))
        except InstanceNotFoundError as exc:
            return 404, _fail(str(exc))
        except (EmulatorError, ValueError, TypeError) as exc:
            return 400, _fail(str(exc))

    async def _route(self, method: str, path: str, body: Any) -> Any:
        split = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        parts = [unquote(p) for p in split.path.strip("/").split("/") if p]
        if not parts or parts[0] != "workflows":
            raise ApiError(404, f"no API route {split.path}; see {API_PREFIX}/workflows")
        if len(parts) == 1 and method == "GET":
            return [await self._workflow_info(n) for n in self.rt.workflows]
        name = parts[1] if len(parts) > 1 else ""
        if len(parts) == 2:
            if method == "GET":
                return await self._workflow_info(name)
            if method == "DELETE":
                return {"deleted": await self._delete_all(name)}
        elif len(parts) == 3 and parts[2] == "instances":
            if method == "GET":
                return await self._list(name, query.get("status"))
            if method == "POST":
                return await self._create(name, body or {})
        elif len(parts) >= 4 and parts[2] == "instances":
            inst = await self._instance(name, parts[3])
            if len(parts) == 4 and method == "GET":
                return self.describe(inst, await inst.status())
            if len(parts) == 4 and method == "PATCH":
                return await self._act(inst, body or {})
            if len(parts) == 4 and method == "DELETE":
                await inst.delete()
                return {"id": inst.id}
            if len(parts) == 6 and parts[4] == "events" and method == "POST":
                await inst.send_event(parts[5], body)
                return await self._settled(inst)
        raise ApiError(404, f"no API route {method} {split.path}")

    # -- workflows -----------------------------------------------------------------------

    def _workflow(self, name: str) -> Any:
        wf = self.rt.workflows.get(name)
        if wf is None:
            known = ", ".join(self.rt.workflows) or "none"
            raise ApiError(404, f'Workflow "{name}" not found (this project has: {known}, from '
                                f"{self.rt.project.config_path}); pass --config to use another "
                                "project")
        return wf

    async def _workflow_info(self, name: str) -> dict[str, Any]:
        wf = self._workflow(name)
        cfg = self.rt.project.workflow(name)
        counts: dict[str, int] = {}
        for row in await wf.list():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return {"name": name, "binding": cfg.binding, "class_name": cfg.class_name,
                "script_name": self.rt.project.name, "instances": counts}

    async def _delete_all(self, name: str) -> list[str]:
        wf = self._workflow(name)
        ids = [row["id"] for row in await wf.list()]
        for instance_id in ids:
            await (await wf.get(instance_id)).delete()
        return ids

    # -- instances -----------------------------------------------------------------------

    async def _list(self, name: str, status: str | None) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise ApiError(400, f'Looks like you have provided a invalid status "{status}". '
                           f"Valid statuses are: {', '.join(STATUSES[:-1])}")
        return list(await self._workflow(name).list(status=status))

    async def _instance(self, name: str, instance_id: str) -> Instance:
        wf = self._workflow(name)
        if instance_id == "latest":
            rows = await wf.list()
            if not rows:
                raise ApiError(404, f'There are no instances of workflow "{name}"')
            instance_id = rows[-1]["id"]
        inst: Instance = await wf.get(instance_id)
        return inst

    async def _create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, 'the body must be {"id"?: str, "params"?: any}')
        inst = await self._workflow(name).create(id=body.get("id"), params=body.get("params"))
        return await self._settled(inst)

    async def _act(self, inst: Instance, body: dict[str, Any]) -> dict[str, Any]:
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

    async def _settled(self, inst: Instance) -> dict[str, Any]:
        status: dict[str, Any] = await inst.status()
        if self.foreground and status["status"] not in TERMINAL | {"paused"}:
            if status["status"] == "waiting":
                # Parked by an earlier process: start it so it can consume what just arrived.
                # It may park again before we see "running", hence the short timeout.
                with contextlib.suppress(TimeoutError):
                    await inst.wait(until={"running", "queued"}, timeout=0.3)
            status = await inst.wait(until={"waiting", "paused"})
        return {"id": inst.id, **status}

    # -- describe --------------------------------------------------------------------------

    def describe(self, inst: Instance, status: dict[str, Any]) -> dict[str, Any]:
        """Status, the forward step timeline with attempts, and the rollback section."""
        events = inst.events()
        attempts = _attempts_by_step(events)
        steps: list[dict[str, Any]] = []
        rollback_steps: list[dict[str, Any]] = []
        for row in inst.steps():
            entry = {
                "name": row.name, "count": row.count, "type": row.kind, "state": row.state,
                "start": row.started_at, "end": row.ended_at,
                "output": row.output,
                "error": row.error.to_json() if row.error else None,
                "retry_at": row.wake_at if row.kind == "do" and row.state == "running" else None,
                "wake_at": row.wake_at if row.kind in ("sleep", "wait") else None,
                "has_rollback": bool(row.has_rollback),
            }
            if row.kind == "rollback":
                entry["step"] = row.name
                entry["order"] = len(rollback_steps) + 1
                entry["attempts"] = attempts.get(("ROLLBACK_", row.name), [])
                rollback_steps.append(entry)
            else:
                entry["attempts"] = attempts.get(("", row.label), [])
                steps.append(entry)
        started = next((e for e in events if e["event"] == "ROLLBACK_START"), None)
        meta = next((e for e in reversed(events)
                     if e["event"] in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED")), None)
        rollback = None
        if started or rollback_steps:
            rollback = {
                "trigger": (started or {}).get("data", {}).get("triggerError"),
                "total": (started or {}).get("data", {}).get("totalSteps"),
                "completed": ((meta or {}).get("data") or {}).get("completedSteps"),
                "outcome": (status.get("rollback") or {}).get("outcome", "running"),
                "error": (status.get("rollback") or {}).get("error"),
                "steps": rollback_steps,
            }
        times = {e["event"]: e["timestamp"] for e in reversed(events)}
        end = next((e["timestamp"] for e in reversed(events) if e["event"] in (
            "WORKFLOW_SUCCESS", "WORKFLOW_FAILURE", "WORKFLOW_TERMINATED")), None)
        return {"workflow": inst.workflow, "id": inst.id, **status,
                "queued": times.get("WORKFLOW_QUEUED"), "start": times.get("WORKFLOW_START"),
                "end": end, "steps": steps, "rollback_phase": rollback, "events": events}


def _attempts_by_step(events: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in events:
        ev, step = e["event"], e.get("step")
        prefix = "ROLLBACK_" if ev.startswith("ROLLBACK_") else ""
        kind = ev[len(prefix):]
        if step is None or not kind.startswith("ATTEMPT_"):
            continue
        rows = out.setdefault((prefix, step), [])
        if kind == "ATTEMPT_START":
            rows.append({"attempt": e["attempt"], "start": e["timestamp"], "end": None,
                         "state": "running", "error": None})
            continue
        match = next((a for a in reversed(rows) if a["attempt"] == e["attempt"]), None)
        if match is None:
            match = {"attempt": e["attempt"], "start": None}
            rows.append(match)
        match["end"] = e["timestamp"]
        match["state"] = "success" if kind == "ATTEMPT_SUCCESS" else "error"
        match["error"] = (e.get("data") or {}).get("error")
    return out


def _fail(message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": 10001, "message": message}]}


# -- the Worker's fetch handler -------------------------------------------------------------


def fetch_handler(runtime: Runtime) -> Callable[[Request], Any] | None:
    """The project's fetch entry point: ``class Default(WorkerEntrypoint)`` or ``on_fetch``."""
    module = runtime.module
    default = getattr(module, "Default", None)
    if isinstance(default, type) and callable(getattr(default, "fetch", None)):

        async def call_default(request: Request) -> Any:
            return await _maybe_await(default(ExecutionContext(), runtime.env).fetch(request))

        return call_default
    on_fetch = getattr(module, "on_fetch", None)
    if callable(on_fetch):
        arity = len(inspect.signature(on_fetch).parameters)

        async def call_on_fetch(request: Request) -> Any:
            args = (request, runtime.env, ExecutionContext())[: max(arity, 1)]
            return await _maybe_await(on_fetch(*args))

        return call_on_fetch
    return None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# -- the HTTP server ------------------------------------------------------------------------


class DevServer:
    """Serves one project on ``ip:port`` until `stop` is called."""

    def __init__(self, runtime: Runtime, ip: str, port: int) -> None:
        self.rt = runtime
        self.api = InstanceApi(runtime)
        self.fetch = fetch_handler(runtime)
        self.ip, self.port = ip, port
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        """Ask the server to shut down."""
        self._stopped.set()

    async def serve(self, ready: Callable[[str], None] = print) -> None:
        """Listen, announce readiness, and serve until stopped."""
        server = await asyncio.start_server(self._connection, self.ip, self.port)
        self.port = server.sockets[0].getsockname()[1]
        ready(f"[workflows-emulator] Ready on http://{self.ip}:{self.port}")
        async with server:
            await self._stopped.wait()
            server.close()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader, f"http://{self.ip}:{self.port}")
            if request is None:
                return
            status, headers, body = await self._respond(request)
            _write_response(writer, status, headers, body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        split = urlsplit(request.url)
        if split.path == API_PREFIX or split.path.startswith(API_PREFIX + "/"):
            raw = await request.bytes()
            try:
                payload = json.loads(raw) if raw.strip() else None
            except json.JSONDecodeError as exc:
                return _json(400, _fail(f"the request body is not JSON: {exc}"))
            rel = split.path[len(API_PREFIX):] + (f"?{split.query}" if split.query else "")
            return _json(*await self.api.handle(request.method.value, rel, payload))
        if self.fetch is None:
            return _text(404, "this project has no fetch handler: define class "
                         "Default(WorkerEntrypoint) with async def fetch(self, request)")
        try:
            response = await self.fetch(request)
        except Exception:
            text = traceback.format_exc()
            print(f"✘ [ERROR] {request.method} {request.url} failed:\n{text}", file=sys.stderr,
                  flush=True)  # as wrangler dev does: the console shows what went wrong
            return _text(500, text)
        if not isinstance(response, Response):
            return _text(500, f"fetch returned {type(response).__name__}, not a Response")
        return response.status, list(response.headers.items()), response.raw_body()


def _json(status: int, obj: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps(obj, default=str).encode()


def _text(status: int, text: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "text/plain;charset=UTF-8")], text.encode()


async def _read_request(reader: asyncio.StreamReader, origin: str) -> Request | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, _ = parts
    headers = [tuple(h.split(":", 1)) for h in lines[1:] if ":" in h]
    length = int(next((v for k, v in headers if k.strip().lower() == "content-length"), "0"))
    if length > MAX_BODY:
        raise ConnectionError("body too large")
    body = await reader.readexactly(length) if length else b""
    return Request(origin + target, method=method,
                   headers=[(k.strip(), v.strip()) for k, v in headers], body=body)


def _write_response(writer: asyncio.StreamWriter, status: int,
                    headers: list[tuple[str, str]], body: bytes) -> None:
    reason = Response(None, status).status_text
    out = [f"HTTP/1.1 {status} {reason}"]
    out += [f"{k}: {v}" for k, v in headers if k.lower() not in ("content-length", "connection")]
    out += [f"content-length: {len(body)}", "connection: close", "", ""]
    writer.write("\r\n".join(out).encode("latin-1") + body)


def running_server(state_dir: Path) -> str | None:
    """The URL of a live dev server holding ``state_dir``, if there is one."""
    try:
        info = json.loads((state_dir / LOCK_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"http://{info['ip']}:{info['port']}"


@contextlib.contextmanager
def _holding(state_dir: Path) -> Iterator[Callable[[str, int], None]]:
    other = running_server(state_dir)
    if other is not None:
        raise ProjectConfigError(
            f"another dev server ({other}) is using {state_dir}; stop it, or pass another "
            "--persist-to"
        )
    lock = state_dir / LOCK_FILE

    def write(ip: str, port: int) -> None:
        lock.write_text(json.dumps({"pid": os.getpid(), "ip": ip, "port": port}))

    try:
        yield write
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


async def run_dev(project: Project, state_dir: Path, ip: str, port: int) -> int:
    """Run the dev server until SIGINT/SIGTERM; instances stay in ``state_dir``."""
    for warning in project.warnings:
        print(f"▲ [WARNING] {warning}", file=sys.stderr)
    state_dir.mkdir(parents=True, exist_ok=True)
    with _holding(state_dir) as write_lock:
        return await _serve_project(project, state_dir, ip, port, write_lock)


async def _serve_project(project: Project, state_dir: Path, ip: str, port: int,
                         write_lock: Callable[[str, int], None]) -> int:
    # Ctrl-C lets running step callbacks finish (up to 10 s) so no attempt is wasted.
    async with open_runtime(project, state_dir, clock="real", drain_timeout=10.0) as rt:
        server = DevServer(rt, ip, port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)

        def ready(line: str) -> None:
            write_lock(server.ip, server.port)
            print(line, flush=True)

        try:
            await server.serve(ready)
        except OSError as exc:
            raise ProjectConfigError(
                f"cannot listen on {ip}:{port}: {exc.strerror}; pick another --port"
            ) from exc
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        print("[workflows-emulator] Shutting down; instances are kept in " + str(state_dir),
              flush=True)
    return 0
