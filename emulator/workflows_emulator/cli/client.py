"""How CLI commands reach the JSON API: over HTTP to a running dev server, or in-process."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..project import load_project
from ..state_lock import running_server

Call = Callable[[str, str, Any], Awaitable[Any]]
"""``call(method, path, body)``: the ``result`` of one API call, or `CliError`."""
Command = Callable[[Call], Coroutine[Any, Any, int]]
T = TypeVar("T")


class CliError(Exception):
    """A command failed; the message is printed as ``✘ [ERROR] ...``."""


def run_command(args: argparse.Namespace, command: Command, *, read_only: bool = False) -> int:
    """Run ``command`` against the dev server driving the state (or ``--local``), else here.

    A ``read_only`` command reads a snapshot of the state directory: no lock, no writes, no
    instance driven. Any other command takes the directory's lock for its run (refused,
    naming the holder, while another process drives it).
    """
    state = Path(args.persist_to)
    base = f"http://{args.ip}:{args.port}" if args.local else running_server(state)
    if base is not None:
        import asyncio  # not for a snapshot: `run_to_end` runs it without an event loop

        return asyncio.run(command(_http_call(base)))
    project = load_project(args.config)
    for warning in project.warnings:  # a running dev server printed its own at start
        print(f"▲ [WARNING] {warning}", file=sys.stderr)
    if read_only:
        # A snapshot read allocates some 100,000 objects (a 10,000-step instance) and frees
        # none until it prints: the cyclic collector would only rescan them, a tenth of it.
        gc.disable()
        try:
            from ..state_reader import StateReader
            from .snapshot_calls import snapshot_call

            return run_to_end(command(snapshot_call(project, StateReader(state))))
        finally:
            gc.enable()
    import asyncio

    from ..devserver.api_views import InstanceApi
    from ..project import open_runtime_sync
    from ..state_lock import StateLock

    with StateLock.acquire(state) as lock, open_runtime_sync(project, state, clock="real",
                                                             lock=lock,
                                                             doubles=args.doubles) as rt:
        api = InstanceApi(rt, foreground=True, drive_timers_within=args.timers_within)

        async def session() -> int:
            async def call(method: str, path: str, body: Any = None) -> Any:
                return _unwrap((await api.handle(method, path, body)).body)

            try:
                return await command(call)
            finally:
                await rt.emulator.close()

        return asyncio.run(session())


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of ``coroutine``, which must never wait for anything (a snapshot read).

    What ``asyncio.run`` would return, without an event loop (its selector, self-pipe and
    shutdown) and without needing asyncio at all: the describe path imports it only through
    the binding (`workflows_saga`); `RuntimeError` if the coroutine does wait.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a read-only command waited for something: it needs an event loop")


def _http_call(base: str) -> Call:
    import urllib.error  # only with a server: it costs a tenth of the CLI's start
    import urllib.request

    from ..devserver.api_views import API_PREFIX

    async def call(method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + API_PREFIX + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read() or b"{}")
        except urllib.error.URLError as exc:
            raise CliError(
                f"cannot reach the dev server at {base}: {exc.reason}; start it with "
                "`workflows-emulator dev`, or drop --local to work on --persist-to directly"
            ) from exc
        return _unwrap(answer)

    return call


def _unwrap(answer: dict[str, Any]) -> Any:
    if not answer.get("success"):
        errors = answer.get("errors") or [{"message": "unknown error"}]
        raise CliError("; ".join(e.get("message", "") for e in errors))
    return answer["result"]
