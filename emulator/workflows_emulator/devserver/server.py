"""The dev server: sends each request to the JSON API or the Worker's fetch handler, and runs it.

Every request first passes `local_only.refusal` (Host, and Origin for API changes); the API
answers JSON, the rest goes to the project's fetch handler.
"""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ProjectConfigError
from ..output_gate import open_gate
from ..project import Project, Runtime, open_runtime
from ..state_lock import StateLock
from ..values import shown
from ..workers_shim.http import Request, Response
from .api_views import API_PREFIX, ApiResponse, InstanceApi
from .explorer_api import EXPLORER_API_PREFIX, EXPLORER_PREFIX, ExplorerApi
from .explorer_ui import api_handler, ui_handler
from .http_transport import HttpLimits, HttpResponse, HttpServer
from .local_only import exposure_warning, refusal
from .timeline_api import TimelineApi, catch_up, clock_note
from .timeline_page import PAGE_PREFIX, serve_page
from .worker_fetch import fetch_handler

NO_FETCH = ("this project has no fetch handler: define class Default(WorkerEntrypoint) with "
            "async def fetch(self, request)")


RouteHandler = Callable[[Request, str], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class Route:
    """A path prefix the dev server answers itself; ``handler(request, rest_of_path_and_query)``.

    ``api``: a JSON API (answers JSON errors; changes need a local Origin, see `local_only`).
    """

    prefix: str
    handler: RouteHandler
    api: bool = False

    def matches(self, path: str) -> bool:
        """Whether ``path`` is the prefix or under it."""
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")


class DevServer:
    """Serves one project on ``ip:port`` until `stop` is called; ``limits`` bound each client."""

    def __init__(self, runtime: Runtime, ip: str, port: int,
                 limits: HttpLimits | None = None) -> None:
        self.rt = runtime
        self.api = InstanceApi(runtime)
        self.fetch = fetch_handler(runtime)
        self.http = HttpServer(self.respond, ip, port, limits)
        self.routes: list[Route] = [
            Route(API_PREFIX, self._api_route, api=True),
            Route(EXPLORER_API_PREFIX, api_handler(ExplorerApi(runtime, self.api)), api=True),
            Route(EXPLORER_PREFIX, ui_handler(runtime.project.root)),
        ]
        """Path prefixes the server answers itself, first match wins; the rest goes to the
        Worker. Each part of the local-development surface adds its own."""
        self.routes[:0] = [Route(p, h, api=True) for p, h in TimelineApi(self.api).routes()]
        self.routes.append(Route(PAGE_PREFIX, serve_page))  # after the API under its prefix

    @property
    def ip(self) -> str:
        return self.http.ip

    @property
    def port(self) -> int:
        """The bound port once serving (the one asked for before)."""
        return self.http.port

    def stop(self) -> None:
        """Ask the server to shut down."""
        self.http.stop()

    async def serve(self, ready: Callable[[str], None] = print) -> None:
        """Listen, announce readiness, and serve until stopped."""
        await self.http.serve(
            lambda: ready(f"[workflows-emulator] Ready on http://{self.ip}:{self.port}"))

    async def respond(self, request: Request) -> HttpResponse:
        """The answer to one request: a route of `routes` if one matches, else the Worker."""
        split = urlsplit(request.url)
        route = next((r for r in self.routes if r.matches(split.path)), None)
        api = route is not None and route.api
        refused = refusal(request, self.ip, self.port, api=api)
        if refused is not None:
            return (json_response(403, ApiResponse.failure(403, refused).body) if api
                    else text_response(403, refused))
        if route is not None:
            rel = split.path[len(route.prefix):] + (f"?{split.query}" if split.query else "")
            answer = await route.handler(request, rel)
        else:
            answer = await self._worker_response(request)
        open_gate()  # what the answer shows or follows from is on disk before it leaves
        return answer

    async def _api_route(self, request: Request, target: str) -> HttpResponse:
        return await self._api_response(request.method.value, target, await request.bytes())

    async def _api_response(self, method: str, target: str, raw: bytes) -> HttpResponse:
        try:
            payload = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
            answer = ApiResponse.failure(400, f"the request body is not JSON: {exc}")
        else:
            answer = await self.api.handle(method, target, payload)
        return json_response(answer.status, answer.body, answer.headers)

    async def _worker_response(self, request: Request) -> HttpResponse:
        if self.fetch is None:
            return text_response(404, NO_FETCH)
        try:
            response = await self.fetch(request)
        except Exception:
            text = traceback.format_exc()
            print(f"✘ [ERROR] {request.method} {request.url} failed:\n{text}", file=sys.stderr,
                  flush=True)  # as wrangler dev does: the console shows what went wrong
            return text_response(500, text)
        if not isinstance(response, Response):
            return text_response(500, f"fetch returned {type(response).__name__}, not a Response")
        return HttpResponse(response.status, list(response.headers.items()), response.raw_body())


def json_response(status: int, obj: Any,
                  headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    """``obj`` as an ``application/json`` answer, with any extra ``headers``."""
    return HttpResponse(status, [("content-type", "application/json"), *headers],
                        json.dumps(obj, default=shown).encode())


def text_response(status: int, text: str) -> HttpResponse:
    """``text`` as a ``text/plain`` answer."""
    return HttpResponse(status, [("content-type", "text/plain;charset=UTF-8")], text.encode())


async def run_dev(project: Project, state_dir: Path, ip: str, port: int,
                  doubles: str | None = None, virtual_clock: bool = False) -> int:
    """Run the dev server until SIGINT/SIGTERM; instances stay in ``state_dir``."""
    for warning in project.warnings:
        print(f"▲ [WARNING] {warning}", file=sys.stderr)
    # The lock comes first, before the project is imported or any state file is opened.
    with StateLock.acquire(state_dir) as lock:
        return await _serve_project(project, state_dir, ip, port, lock, doubles, virtual_clock)


async def _serve_project(project: Project, state_dir: Path, ip: str, port: int,
                         lock: StateLock, doubles: str | None, virtual_clock: bool) -> int:
    # Ctrl-C lets running step callbacks finish (up to 10 s) so no attempt is wasted.
    async with open_runtime(project, state_dir, clock="virtual" if virtual_clock else "real",
                            drain_timeout=10.0,
                            lock=lock, doubles=doubles) as rt:
        server = DevServer(rt, ip, port)
        if virtual_clock:
            print(clock_note(await catch_up(rt)), flush=True)
        warning = exposure_warning(ip)
        if warning is not None:
            print(f"▲ [WARNING] {warning}", file=sys.stderr, flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)

        def ready(line: str) -> None:
            lock.publish_server(f"http://{server.ip}:{server.port}")
            print(line, flush=True)

        try:
            await server.serve(ready)
        except OSError as exc:
            raise ProjectConfigError(listen_error(exc, ip, port)) from exc
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        print("[workflows-emulator] Shutting down; instances are kept in " + str(state_dir),
              flush=True)
    return 0


def listen_error(exc: OSError, ip: str, port: int) -> str:
    """What to tell the user when ``ip:port`` cannot be bound, by the real cause."""
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {ip}: no such address ({exc.strerror}); pass --ip 127.0.0.1"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {ip} is already in use: pick another --port"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"permission denied listening on {ip}:{port} (ports below 1024 usually need "
                "root): pick a --port above 1023")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot assign requested address {ip}: it is not an address of this machine; "
                "use --ip 127.0.0.1 (or an address this machine has)")
    return f"cannot listen on {ip}:{port}: {exc.strerror or exc}"
