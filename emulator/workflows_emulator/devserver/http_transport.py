"""The dev server's HTTP/1.1, on aiohttp's low-level server: the only module that knows aiohttp.

Each request becomes a Worker `Request` (full URL, method, every header, body bytes); the
handler answers with an `HttpResponse`, and aiohttp writes it back (leaving the body out of a
HEAD answer). `HttpLimits` keeps a slow, idle or hostile client from holding memory or sockets:
bodies over ``max_body`` get 413, request heads are bounded by aiohttp's parser, a connection
that sends no complete request within ``idle_timeout`` is closed, a body must arrive within
``read_timeout``, and past ``max_connections`` the oldest idle connections are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPMethod
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict

from ..workers_shim.http import Request

MAX_BODY = 10 << 20
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
HOP_BY_HOP = frozenset({"connection", "content-length", "keep-alive", "transfer-encoding"})

# aiohttp logs every malformed request with a traceback; a client's garbage is not the
# server's error, so those records stop here unless the application configures logging.
_LOG = logging.getLogger(__name__)
_LOG.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on what one client may make the server hold, and for how long.

    Attributes:
        max_body: largest request body in bytes; a larger one is answered 413.
        max_line_size: longest request line or header line in bytes.
        max_field_size: longest header value in bytes.
        max_headers: most header lines in one request.
        idle_timeout: seconds a connection may wait with no complete request (before its
            first one, or kept alive between two) before it is closed.
        read_timeout: seconds a client has to send a request body.
        max_connections: open connections past which the oldest idle ones are closed.
    """

    max_body: int = MAX_BODY
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 100
    idle_timeout: float = 15.0
    read_timeout: float = 30.0
    max_connections: int = 256


@dataclass(frozen=True)
class HttpResponse:
    """What a handler answers: status, headers (repeats kept; no length or connection), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


Handler = Callable[[Request], Awaitable[HttpResponse]]


class _BodyTooLarge(Exception):
    """The body grew past the limit while it was being read."""


class HttpServer:
    """Serves ``handler`` on ``ip:port`` until `stop` is called; port 0 picks a free port.

    Example:
        server = HttpServer(handler, "127.0.0.1", 0)
        await server.start()          # server.port is now the bound port
        ...
        await server.close()
    """

    def __init__(self, handler: Handler, ip: str, port: int,
                 limits: HttpLimits | None = None) -> None:
        self.handler = handler
        self.ip, self.port = ip, port
        self.limits = limits or HttpLimits()
        self._stopped = asyncio.Event()
        self._runner: web.ServerRunner | None = None
        self._server: _BoundedServer | None = None

    def stop(self) -> None:
        """Ask `serve` to shut down."""
        self._stopped.set()

    async def serve(self, ready: Callable[[], None]) -> None:
        """Listen, call ``ready`` once `port` is bound, and serve until stopped.

        Raises:
            OSError: the address cannot be bound (in use, not this machine's, no permission).
        """
        await self.start()
        try:
            ready()
            await self._stopped.wait()
        finally:
            await self.close()

    async def start(self) -> None:
        """Bind and start accepting connections; `port` becomes the bound port."""
        limits = self.limits
        self._server = server = _BoundedServer(
            self._on_request, limits=limits, logger=_LOG, access_log=None,
            keepalive_timeout=limits.idle_timeout, max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size, max_headers=limits.max_headers,
            lingering_time=min(1.0, limits.read_timeout),
        )
        runner = web.ServerRunner(server, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.ip, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop accepting, let requests in progress finish (a few seconds at most), close all."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _on_request(self, request: web.BaseRequest) -> web.StreamResponse:
        server = self._server
        assert server is not None  # requests only arrive once start() made it
        server.busy.add(request.protocol)
        server.answered.add(request.protocol)
        try:
            return await self._answer(request)
        finally:
            server.busy.discard(request.protocol)

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            method = HTTPMethod(request.method)
        except ValueError:
            return _plain(501, f"the dev server does not implement the {request.method} method")
        try:
            body = await self._read_body(request)
        except _BodyTooLarge:
            return _plain(413, f"the request body is over the dev server's limit of "
                               f"{self.limits.max_body} bytes", close=True)
        except TimeoutError:
            return _plain(408, f"the request body did not arrive within "
                               f"{self.limits.read_timeout:g} seconds", close=True)
        except (web.RequestPayloadError, HttpProcessingError, ConnectionError) as exc:
            return _plain(400, f"the request body could not be read: {exc}", close=True)
        shim = Request(self._url(request), method=method, headers=_header_items(request),
                       body=body)
        try:
            return _to_aiohttp(await self.handler(shim))
        except Exception:
            text = traceback.format_exc()
            print(f"✘ [ERROR] the dev server failed on {request.method} {request.rel_url}:\n{text}",
                  file=sys.stderr, flush=True)
            return _plain(500, "the dev server failed on this request; its console has the "
                               "traceback")

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        limit = self.limits.max_body
        if (request.content_length or 0) > limit:
            raise _BodyTooLarge
        if request.headers.get("expect", "").lower() == "100-continue":
            # The client waits for this before sending the body (curl does past 1 KiB).
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.limits.read_timeout):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:  # a chunked body has no length to check up front
                    raise _BodyTooLarge
                chunks.append(chunk)
        return b"".join(chunks)

    def _url(self, request: web.BaseRequest) -> str:
        host = request.headers.get("host", "")
        if not _AUTHORITY.fullmatch(host):  # the URL must parse even when the Host is junk
            host = f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"
        target = request.raw_path  # as sent, so percent-escapes reach the Worker unchanged
        return f"http://{host}{target if target.startswith('/') else request.rel_url}"


class _BoundedServer(web.Server):
    """aiohttp's server, closing silent connections and the oldest idle ones past the cap."""

    def __init__(self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], *,
                 limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.busy: set[web.RequestHandler] = set()
        self.answered: set[web.RequestHandler] = set()

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        asyncio.get_running_loop().call_later(self.limits.idle_timeout, self._drop_if_silent,
                                              handler)
        excess = len(self.connections) - self.limits.max_connections
        if excess > 0:
            idle = [h for h in self.connections if h is not handler and h not in self.busy]
            for old in idle[:excess]:
                old.force_close()

    def _drop_if_silent(self, handler: web.RequestHandler) -> None:
        # Older aiohttp versions time out only the gap between two requests, never a
        # connection that has not sent its first complete request head.
        if handler in self.answered:
            self.answered.discard(handler)
        else:
            handler.force_close()


def _header_items(request: web.BaseRequest) -> list[tuple[str, str]]:
    """Every header, repeats kept; values as the byte strings the Workers runtime gives."""
    # aiohttp decodes header bytes as UTF-8 with surrogate escapes; Workers (and fetch) read
    # them as Latin-1 byte strings, which also keeps them plain `str` in the shim's headers.
    return [(name, value.encode("utf-8", "surrogateescape").decode("latin-1"))
            for name, value in request.headers.items()]


def _plain(status: int, text: str, *, close: bool = False) -> web.Response:
    response = web.Response(status=status, text=text)
    if close:
        response.force_close()
    return response


def _to_aiohttp(answer: HttpResponse) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in answer.headers:
        if any(c in name + value for c in "\r\n\0") or not name:
            return _plain(500, f"the Worker's response has an invalid header {name!r}")
        if name.lower() not in HOP_BY_HOP:
            headers.add(name, value)
    if not 200 <= answer.status <= 599:  # as the Workers runtime's Response allows
        return _plain(500, f"the Worker's response has an invalid status {answer.status}")
    return web.Response(status=answer.status, headers=headers, body=answer.body)
