"""Finding and calling the project's own fetch handler (the Worker behind the dev server)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..project import Runtime
from ..workers_shim.env import ExecutionContext
from ..workers_shim.http import Request


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
