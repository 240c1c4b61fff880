"""The Local Explorer over HTTP: its API (`explorer_api`) and its browser UI's static files.

The UI is Cloudflare's own, from the npm ``miniflare`` package that wrangler installs: its
``dist/local-explorer-ui/`` folder, found in the ``node_modules`` of the project's folder or
of any folder above it, else in this repository's. Nothing of it is copied here; without it,
``/cdn-cgi/local/explorer/`` answers a short page saying how to get it.
"""

from __future__ import annotations

import html
import json
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..values import shown
from ..workers_shim.http import Request
from .explorer_api import ExplorerApi, RawAnswer
from .http_transport import HttpResponse

UI_PARTS = ("miniflare", "dist", "local-explorer-ui")
NESTED_UI_PARTS = ("wrangler", "node_modules", *UI_PARTS)
REPOSITORY = Path(__file__).resolve().parents[3]

Handler = Callable[[Request, str], Awaitable[HttpResponse]]


def find_ui(project_root: Path) -> Path | None:
    """The ``local-explorer-ui`` folder for a project in ``project_root``, or ``None``.

    Looks in ``node_modules`` of the project's folder and each folder above it, then of
    this repository (a checkout with the npm tooling installed).
    """
    start = project_root.resolve()
    for folder in (start, *start.parents, REPOSITORY):
        for parts in (UI_PARTS, NESTED_UI_PARTS):
            candidate = folder.joinpath("node_modules", *parts)
            if (candidate / "index.html").is_file():
                return candidate
    return None


def api_handler(explorer: ExplorerApi) -> Handler:
    """The dev server's route handler for `EXPLORER_API_PREFIX`: JSON in, JSON out."""

    async def handle(request: Request, target: str) -> HttpResponse:
        answer = await explorer.handle(request.method.value, target, await request.bytes())
        if isinstance(answer, RawAnswer):
            return HttpResponse(answer.status, [("content-type", answer.content_type)],
                                answer.body)
        return HttpResponse(answer.status, [("content-type", "application/json"),
                                            *answer.headers],
                            json.dumps(answer.body, default=shown).encode())

    return handle


def ui_handler(project_root: Path) -> Handler:
    """The route handler for `EXPLORER_PREFIX`: the UI's files, ``index.html`` for its routes.

    The folder is looked up on each request, so installing wrangler while the dev server
    runs is enough.
    """

    async def handle(request: Request, target: str) -> HttpResponse:
        root = find_ui(project_root)
        if root is None:
            return missing_ui_page(project_root)
        return ui_file(root, target.split("?", 1)[0])

    return handle


def ui_file(root: Path, rel: str) -> HttpResponse:
    """The file ``rel`` under ``root``; any other path gets ``index.html`` (the UI routes it)."""
    wanted = (root / rel.lstrip("/")).resolve()
    if not wanted.is_file() or not wanted.is_relative_to(root.resolve()):
        wanted = root / "index.html"
    kind = mimetypes.guess_type(wanted.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind == "application/javascript":
        kind += "; charset=utf-8"
    return HttpResponse(200, [("content-type", kind)], wanted.read_bytes())


def missing_ui_page(project_root: Path) -> HttpResponse:
    """The page served when no ``miniflare`` package holds the UI: how to get it."""
    where = html.escape(str(project_root))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Local Explorer not installed</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The Local Explorer UI is not installed</h1>
<p>Its files come with wrangler (in the npm package <code>miniflare</code>). Install it in
your project's folder (<code>{where}</code>) and reload this page:</p>
<pre>npm i -D wrangler</pre>
<p>The API it uses already works: <a href="/cdn-cgi/local/explorer/api/workflows">
/cdn-cgi/local/explorer/api/workflows</a>, and so does
<code>wrangler workflows list --local --port &lt;this port&gt;</code>.</p>
</body></html>
"""
    return HttpResponse(404, [("content-type", "text/html; charset=utf-8")], body.encode())
