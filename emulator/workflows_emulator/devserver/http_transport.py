"""A minimal HTTP/1.1 server on asyncio streams: the only module that reads or writes HTTP bytes.

One request per connection (``connection: close``): the request becomes a Worker `Request`,
the handler answers with an `HttpResponse`, and that is written back. Everything above this
module sees only those two objects, so a real HTTP server library can replace it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..workers_shim.http import Request, Response

MAX_BODY = 10 << 20


@dataclass(frozen=True)
class HttpResponse:
    """What a handler answers: status, headers (no length or connection), body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


Handler = Callable[[Request], Awaitable[HttpResponse]]


class HttpServer:
    """Serves ``handler`` on ``ip:port`` until `stop` is called; port 0 picks a free port."""

    def __init__(self, handler: Handler, ip: str, port: int) -> None:
        self.handler = handler
        self.ip, self.port = ip, port
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        """Ask the server to shut down."""
        self._stopped.set()

    async def serve(self, ready: Callable[[], None]) -> None:
        """Listen, call ``ready`` once `port` is bound, and serve until stopped."""
        server = await asyncio.start_server(self._connection, self.ip, self.port)
        self.port = server.sockets[0].getsockname()[1]
        ready()
        async with server:
            await self._stopped.wait()
            server.close()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader, f"http://{self.ip}:{self.port}")
            if request is None:
                return
            write_response(writer, await self.handler(request))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def read_request(reader: asyncio.StreamReader, origin: str) -> Request | None:
    """Read one request (head and ``content-length`` body); ``None`` for a malformed request line."""
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


def write_response(writer: asyncio.StreamWriter, response: HttpResponse) -> None:
    """Write ``response`` with its length, closing the connection after it."""
    reason = Response(None, response.status).status_text
    out = [f"HTTP/1.1 {response.status} {reason}"]
    out += [f"{k}: {v}" for k, v in response.headers
            if k.lower() not in ("content-length", "connection")]
    out += [f"content-length: {len(response.body)}", "connection: close", "", ""]
    writer.write("\r\n".join(out).encode("latin-1") + response.body)
