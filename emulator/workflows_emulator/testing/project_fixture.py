"""An unmodified Worker project in a test: `load_test_project` and the `LoadedProject` it gives.

The project is loaded as the dev server loads it (its wrangler file, its ``from workers
import`` modules, its bindings, doubles from ``emulator_doubles.py`` or ``doubles=``), on a
temporary state directory and, by default, the virtual clock. No server: ``fetch`` calls the
Worker's handler with a `Request` and returns its `Response`.

Example:
    >>> async with load_test_project("wrangler.toml") as project:     # doctest: +SKIP
    ...     response = await project.fetch("/transfers", method="POST", json={"amount": 5})
    ...     assert response.status == 200
    ...     inst = await project.workflows["transfer"].get((await response.json())["id"])
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from json import dumps as json_dumps
from pathlib import Path
from typing import Any

from workflows_saga import Duration

from ..bindings.doubles import DoublesSource
from ..clock import Clock
from ..emulator import Emulator, Workflow
from ..errors import EmulatorError, ProjectConfigError
from ..project import Project, Runtime, load_project, open_runtime
from ..workers_shim.http import HeadersLike, Request, Response, make_headers

BASE_URL = "http://localhost:8787"
"""Where a relative ``fetch("/path")`` goes (the address ``wrangler dev`` serves on)."""
_NO_BODY = object()


class LoadedProject:
    """A Worker project running on an emulator, for tests.

    Attributes:
        config: the parsed wrangler file (`Project`: ``name``, ``vars``, ``warnings`` ...).
        emulator: the `Emulator` it runs on (``emulator.clock``, ``emulator.settle()`` ...).
        env: the bindings as the Worker sees them: ``env.TRANSFER``, vars, KV, D1, R2,
            Durable Objects, services, doubles.
        workflows: the workflows by ``[[workflows]]`` name, as `Workflow` (``create``,
            ``get``, ``list``), whose instances have ``wait``, ``events`` and the precise waits.
        module: the imported ``main`` module.
        state_dir: where the instances and stores live for this test.
    """

    def __init__(self, runtime: Runtime, state_dir: Path) -> None:
        self.runtime = runtime
        self.config: Project = runtime.project
        self.emulator: Emulator = runtime.emulator
        self.env: Any = runtime.env
        self.workflows: dict[str, Workflow] = runtime.workflows
        self.module = runtime.module
        self.state_dir = state_dir
        self._handler: Callable[[Request], Any] | None = None

    @property
    def clock(self) -> Clock:
        """The emulator's clock (virtual unless ``clock="real"``)."""
        return self.emulator.clock

    def workflow(self, name: str) -> Workflow:
        """The workflow ``name`` (a ``[[workflows]]`` name or its binding, e.g. ``"TRANSFER"``)."""
        if name in self.workflows:
            return self.workflows[name]
        for wf in self.config.workflows:
            if wf.binding == name:
                return self.workflows[wf.name]
        known = ", ".join(f"{w.name} ({w.binding})" for w in self.config.workflows) or "none"
        raise KeyError(f"{self.config.config_path} has no workflow {name!r}; known: {known}")

    async def fetch(self, request: str | Request, *, method: str = "GET",
                    headers: HeadersLike = None, body: str | bytes | None = None,
                    json: Any = _NO_BODY) -> Response:
        """Call the Worker's fetch handler, as the dev server would, and return its response.

        Args:
            request: a `Request`, or a URL; a path (``"/transfers"``) is under `BASE_URL`.
            method, headers, body: for a URL, as in ``Request(url, method=..., ...)``.
            json: a body to send as JSON (sets ``content-type: application/json``).

        Raises:
            EmulatorError: the project has no fetch handler.
            TypeError: the handler returned something other than a `Response`.
            Exception: whatever the handler raised, as it raised it (a test sees the cause,
                where the dev server would answer 500).
        """
        if isinstance(request, str):
            request = _request(request, method, headers, body, json)
        elif json is not _NO_BODY or body is not None:
            raise TypeError("fetch(Request): put the body in the Request, not in body=/json=")
        response = await self._fetch_handler()(request)
        if not isinstance(response, Response):
            raise TypeError(f"the fetch handler of {self.config.main.name} returned "
                            f"{type(response).__name__}, not a Response")
        return response

    def _fetch_handler(self) -> Callable[[Request], Any]:
        if self._handler is None:
            from ..devserver.worker_fetch import fetch_handler

            self._handler = fetch_handler(self.runtime)
            if self._handler is None:
                raise EmulatorError(
                    f"{self.config.main}: this project has no fetch handler: define class "
                    "Default(WorkerEntrypoint) with async def fetch(self, request)")
        return self._handler

    async def advance(self, duration: Duration) -> None:
        """Move the virtual clock forward (firing timers, KV expiries, alarms on the way)."""
        await self.emulator.advance(duration)

    async def settle(self) -> None:
        """Let everything run as far as it can without moving time."""
        await self.emulator.settle()


def _request(url: str, method: str, headers: HeadersLike, body: str | bytes | None,
             json: Any) -> Request:
    if url.startswith("/"):
        url = BASE_URL + url
    if json is not _NO_BODY:
        if body is not None:
            raise TypeError("fetch() takes body= or json=, not both")
        body = json_dumps(json)
        headers = make_headers(headers)
        if "content-type" not in headers:
            headers["content-type"] = "application/json"
    return Request(url, method=method, headers=headers, body=body)


@contextlib.asynccontextmanager
async def load_test_project(config: str | Path, *, doubles: DoublesSource = None,
                            clock: str = "virtual", state_dir: str | Path | None = None,
                            ) -> AsyncIterator[LoadedProject]:
    """Load the project of ``config`` (a wrangler file, or a folder holding one) for a test.

    Args:
        config: ``wrangler.toml`` / ``wrangler.jsonc`` / ``wrangler.json``, or its folder.
        doubles: doubles for bindings, as for the dev server: a mapping
            ``{"BINDING": object, "fetch": async_fn}`` or the path of a doubles module;
            ``None`` uses ``emulator_doubles.py`` beside the wrangler file, if there is one.
        clock: ``"virtual"`` (time moves only through ``advance`` and the waits) or ``"real"``.
        state_dir: where to keep the state; ``None``: a temporary folder, removed on exit.

    Raises:
        ProjectConfigError: the wrangler file, the import of ``main`` or the doubles failed.
    """
    if not Path(config).exists():
        raise ProjectConfigError(
            f"{config}: no such wrangler file or folder; fix the path given to "
            "load_test_project(), @pytest.mark.workflows_project(...) (relative to the test "
            "file) or the workflows_project ini option (relative to the ini file)")
    project = load_project(config)
    tmp = tempfile.mkdtemp(prefix="workflows-project-") if state_dir is None else None
    state = Path(tmp if tmp is not None else str(state_dir))
    try:
        async with open_runtime(project, state, clock=clock, doubles=doubles,
                                determinism="error") as runtime:  # tests fail on it
            yield LoadedProject(runtime, state)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
