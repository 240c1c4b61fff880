"""``Request`` and ``Response`` as the Python Workers SDK shapes them, over plain bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPMethod, HTTPStatus
from http.client import HTTPMessage
from typing import Any

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]] | HTTPMessage | None


def make_headers(headers: HeadersLike) -> HTTPMessage:
    """Case-insensitive headers, as ``request.headers`` / ``response.headers`` are in the SDK."""
    msg = HTTPMessage()
    if headers is None:
        return msg
    items = headers.items() if isinstance(headers, Mapping | HTTPMessage) else headers
    for key, value in items:
        msg[key] = str(value).strip()
    return msg


class _Body:
    """The body readers shared by requests and responses."""

    _body: bytes
    _used: bool = False

    def _take(self) -> bytes:
        if self._used:
            raise OSError("Body already used")
        self._used = True
        return self._body

    @property
    def body_used(self) -> bool:
        """True once the body has been read."""
        return self._used

    async def bytes(self) -> bytes:
        """The body as bytes."""
        return self._take()

    async def text(self) -> str:
        """The body decoded as UTF-8."""
        return self._take().decode("utf-8")

    async def _parse_json(self, **kwargs: Any) -> Any:
        return json.loads(await self.text(), **kwargs)


def _to_bytes(body: str | bytes | None, what: str) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes):
        return body
    raise TypeError(f"Unsupported type in {what}: {type(body).__name__}")


class Request(_Body):
    """An incoming (or outgoing) HTTP request.

    Args:
        input: the URL, or a `Request` to copy.
        method, headers, body: as in the SDK's ``Request(url, method=..., headers=..., body=...)``.
    """

    def __init__(self, input: str | Request, *, method: str | HTTPMethod = "GET",
                 headers: HeadersLike = None, body: str | bytes | None = None) -> None:
        self._url: str
        self._method: HTTPMethod
        self._headers: HTTPMessage
        if isinstance(input, Request):
            self._url, self._method = input._url, input._method
            self._headers = make_headers(input._headers.items())
            self._body = input._body
            return
        self._url = input
        self._method = HTTPMethod(str(method.value if isinstance(method, HTTPMethod)
                                      else method).upper())
        self._headers = make_headers(headers)
        self._body = _to_bytes(body, "Request")

    def __repr__(self) -> str:
        return f"Request(method={self._method.value!r}, url={self._url!r})"

    @property
    def url(self) -> str:
        """The full URL."""
        return self._url

    @property
    def method(self) -> HTTPMethod:
        """The method, as `http.HTTPMethod` (compare with ``"POST"`` works too)."""
        return self._method

    @property
    def headers(self) -> HTTPMessage:
        """Case-insensitive headers."""
        return self._headers

    @property
    def cf(self) -> None:
        """Cloudflare request properties: none locally."""
        return None

    async def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON."""
        return await self._parse_json(**kwargs)

    def clone(self) -> Request:
        """A copy whose body can be read separately."""
        if self._used:
            raise OSError("Body already used")
        return Request(self)


class Response(_Body):
    """An HTTP response.

    ``Response.json(data, status=...)`` (static) builds a JSON response, as in the SDK;
    ``await response.json()`` on an instance parses its body.
    """

    def __init__(self, body: str | bytes | None = None, status: HTTPStatus | int | None = None,
                 status_text: str = "", headers: HeadersLike = None) -> None:
        self._body = _to_bytes(body, "Response")
        self._status = int(status) if status else 200
        self._status_text = status_text
        self._headers = make_headers(headers)
        if isinstance(body, str) and "content-type" not in self._headers:
            self._headers["content-type"] = "text/plain;charset=UTF-8"

    def __repr__(self) -> str:
        return f"Response(status={self._status})"

    @property
    def status(self) -> int:
        """The status code."""
        return self._status

    @property
    def status_text(self) -> str:
        """The reason phrase."""
        return self._status_text or _reason(self._status)

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self._status < 300

    @property
    def headers(self) -> HTTPMessage:
        """Case-insensitive headers."""
        return self._headers

    @staticmethod
    def from_json(data: Any, status: HTTPStatus | int = HTTPStatus.OK, status_text: str = "",
                  headers: HeadersLike = None) -> Response:
        """A response whose body is ``data`` as JSON."""
        resp = Response(json.dumps(data).encode(), status, status_text, headers)
        if "content-type" not in resp._headers:
            resp._headers["content-type"] = "application/json"
        return resp

    @staticmethod
    def redirect(url: str, status: HTTPStatus | int = HTTPStatus.FOUND) -> Response:
        """A redirect to ``url``."""
        return Response(None, status, headers={"location": url})

    def json(self, *args: Any, **kwargs: Any) -> Any:
        # Static use (Response.json(data)) builds a response, as the SDK allows.
        if isinstance(self, Response):
            return self._parse_json()
        return Response.from_json(self, *args, **kwargs)

    def raw_body(self) -> bytes:
        """The body bytes, without marking it used (for the dev server)."""
        return self._body


FetchResponse = Response


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
