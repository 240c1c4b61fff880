"""Service bindings (``[[services]]``) to an entrypoint of the same project.

``env.SVC`` is a `ServiceBinding` on a ``WorkerEntrypoint`` subclass of the project (the
default export ``Default``, or the class named by ``entrypoint``). Each call builds a new
instance, ``target(ctx, env)`` with a fresh `ExecutionContext`, as each request to a Worker
does: ``await env.SVC.fetch(url_or_request, method=..., headers=..., body=...)`` calls its
``fetch(request)`` and returns the `Response`; ``await env.SVC.some_method(...)`` calls that
method, arguments and result crossing as over RPC (trailing keywords arrive as one dict, as
Pyodide passes them).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..output_gate import open_gate
from ..workers_shim.env import ExecutionContext
from ..workers_shim.http import Request, Response
from ..workers_shim.rpc import round_trip
from .durable_objects import call_fetch, make_request, rpc_arguments

# What a Fetcher has that is not an RPC method of the target.
_NOT_RPC = frozenset({"fetch", "connect"})


class ServiceBinding:
    """``env.SVC``: ``fetch`` and RPC method calls on an entrypoint class of the project.

    Args:
        target: the entrypoint class (built as ``target(ctx, env)`` for each call).
        env: the Worker's env the entrypoint gets (or later, `attach_env`).
        name: the binding's name, for messages.
    """

    def __init__(self, target: type, *, env: Any = None, name: str) -> None:
        if not isinstance(target, type):
            raise TypeError(f"service binding {name} needs an entrypoint class, not "
                            f"{type(target).__name__}")
        self._target = target
        self._env = env
        self._name = name

    def attach_env(self, env: Any) -> None:
        """Give the entrypoint the Worker's env (which holds this binding itself)."""
        self._env = env

    def __repr__(self) -> str:
        return f"ServiceBinding({self._name} -> {self._target.__name__})"

    def _instance(self) -> Any:
        return self._target(ExecutionContext(), self._env)

    async def fetch(self, input: str | Request, init: Mapping[str, Any] | None = None, /,
                    **kwargs: Any) -> Response:
        """Call the entrypoint's ``fetch(request)`` and return its `Response`."""
        request = make_request(input, init, kwargs)
        open_gate()  # held step results are on disk before the entrypoint acts
        return await call_fetch(self._instance(), f"entrypoint {self._target.__name__}",
                                request)

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        """Raw TCP sockets are not emulated."""
        raise NotImplementedError(f"{self._name}.connect(): sockets through a service binding "
                                  "are not emulated; use fetch() or an RPC method")

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        target = self._target
        if name.startswith("_") or name in _NOT_RPC or not callable(getattr(target, name, None)):
            methods = sorted(n for n in dir(target) if not n.startswith("_")
                             and n not in _NOT_RPC and callable(getattr(target, n)))
            raise AttributeError(
                f"service binding {self._name}: entrypoint {target.__name__} has no method "
                f"{name!r} (its RPC methods: {', '.join(methods) or 'none'})")

        async def call(*args: Any, **kwargs: Any) -> Any:
            what = f"{target.__name__}.{name}()"
            sent = rpc_arguments(args, kwargs, what)
            open_gate()
            result = getattr(self._instance(), name)(*sent)
            if inspect.isawaitable(result):
                result = await result
            return round_trip(result, f"the result of {what}")

        call.__name__ = name
        return call
