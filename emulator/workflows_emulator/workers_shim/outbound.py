"""Outbound ``fetch()`` (``from workers import fetch``): the network through aiohttp's client,
or a test double when one is routed in.

A double is an ``async def (request: Request) -> Response``: the ``"fetch"`` entry of the
doubles (see `bindings.doubles`), or `route_fetch` in a test. The newest route wins and is removed when
its runtime closes, so a test's double never leaks into the next test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPMethod
from typing import Any

from ..output_gate import open_gate
from .http import HeadersLike, Request, Response

FetchHandler = Callable[[Request], Awaitable[Response]]
_routes: list[FetchHandler] = []
DEFAULT_TIMEOUT_S = 30.0


@contextlib.contextmanager
def route_fetch(handler: FetchHandler | None) -> Iterator[None]:
    """Send every outbound ``fetch()`` to ``handler`` while the block runs (None: the network)."""
    if handler is None:
        yield
        return
    _routes.append(handler)
    try:
        yield
    finally:
        _routes.remove(handler)


async def fetch(resource: str | Request, *, method: str | HTTPMethod | None = None,
                headers: HeadersLike = None, body: str | bytes | None = None,
                **options: Any) -> Response:
    """``await fetch(url, method="POST", headers={...}, body=...)`` as a Python Worker does.

    Raises:
        OSError: the request could not be made (as the SDK raises for a failed JS fetch).
        TypeError: an option the emulator does not support (it names the supported ones).
    """
    unknown = set(options) - {"redirect", "cf", "signal", "cache"}
    if unknown:
        raise TypeError(f"fetch() got unsupported option(s) {sorted(unknown)}; supported: "
                        "method, headers, body, redirect")
    if isinstance(resource, Request):
        request = resource if method is None and headers is None and body is None else Request(
            resource.url, method=method or resource.method,
            headers=headers if headers is not None else resource.headers,
            body=body if body is not None else await resource.clone().bytes())
    else:
        request = Request(str(resource), method=method or "GET", headers=headers, body=body)
    open_gate()  # held step results are on disk before anything leaves the process
    if _routes:
        return await _routes[-1](request)
    return await _network(request, follow=options.get("redirect", "follow") == "follow")


async def _network(request: Request, *, follow: bool) -> Response:
    import aiohttp  # loaded only when a Worker really goes to the network

    timeout = aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
            request.method.value, request.url, headers=list(request.headers.items()),
            data=await request.bytes() or None, allow_redirects=follow,
        ) as reply:
            data = await reply.read()
            return Response(data, status=reply.status, status_text=reply.reason or "",
                            headers=list(reply.headers.items()))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OSError(f"fetch {request.method.value} {request.url} failed: "
                      f"{type(exc).__name__}: {exc}") from exc
