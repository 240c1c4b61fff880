"""The instance timeline page at ``/__workflows/``: hand-written HTML, CSS and JS, no build step.

The page is one HTML file and its static files in the package's ``static/`` folder; it
reads and drives instances through the JSON API (`api_views`, `timeline_api`) by polling.

    GET /__workflows          -> 308 to /__workflows/
    GET /__workflows/         the page (its views live in the URL's #fragment)
    GET /__workflows/static/<file>

The dev server lists this route after the API's, so ``/__workflows/api/...`` never reaches it.
"""

from __future__ import annotations

from importlib import resources

from ..workers_shim.http import Request
from .http_transport import HttpResponse

PAGE_PREFIX = "/__workflows"
STATIC_FILES = {"index.html": "text/html;charset=UTF-8",
                "app.js": "text/javascript;charset=UTF-8",
                "timeline.css": "text/css;charset=UTF-8"}
"""Every file the page route serves, with its type: nothing else under ``static/`` is sent."""
SECURITY_HEADERS = [
    # Only this server's own files run; the page never talks to another origin.
    ("content-security-policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
]


async def serve_page(request: Request, rel: str) -> HttpResponse:
    """Answer ``rel`` (the path under `PAGE_PREFIX`, query included) with the page or a file."""
    path = rel.split("?", 1)[0]
    if request.method.value not in ("GET", "HEAD"):
        return _text(405, f"{request.method.value} is not allowed here: the page is read with "
                          "GET", [("allow", "GET, HEAD")])
    if path == "":
        return HttpResponse(308, [("location", PAGE_PREFIX + "/")], b"")
    name = "index.html" if path in ("/", "/index.html") else (
        path.removeprefix("/static/") if path.startswith("/static/") else "")
    if name not in STATIC_FILES:
        return _text(404, f"no page at {PAGE_PREFIX}{path}: open {PAGE_PREFIX}/ for the "
                          f"workflows and their instances")
    return HttpResponse(200, [("content-type", STATIC_FILES[name]), *SECURITY_HEADERS],
                        static_file(name))


def static_file(name: str) -> bytes:
    """The bytes of one of `STATIC_FILES`, read from the installed package."""
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _text(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    return HttpResponse(status, [("content-type", "text/plain;charset=UTF-8"), *(headers or [])],
                        text.encode())
