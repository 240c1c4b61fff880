"""``workflows-emulator dev``: the project's fetch handler over HTTP, plus a JSON API for instances.

Modules: `http_transport` (HTTP/1.1 on aiohttp, with its limits and timeouts), `local_only`
(which Host and Origin are answered), `server` (the dev server: API or Worker, and `run_dev`),
`api_views` (the JSON API, no HTTP), `describe` (an instance's describe document),
`worker_fetch` (the project's fetch handler); the package's `state_lock` keeps one process
per state directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .api_views import API_PREFIX, ApiError, ApiRequest, ApiResponse, InstanceApi
    from .describe import describe_instance
    from .http_transport import MAX_BODY, HttpLimits, HttpResponse, HttpServer
    from .server import DevServer, run_dev
    from .worker_fetch import fetch_handler

# Everything loads on first use: the HTTP server (aiohttp, about a third of a second to
# import) and the Worker's fetch path, so the CLI's other commands start without them.
_LAZY = {"API_PREFIX": ".api_views", "ApiError": ".api_views", "ApiRequest": ".api_views",
         "ApiResponse": ".api_views", "InstanceApi": ".api_views",
         "describe_instance": ".describe", "fetch_handler": ".worker_fetch",
         "MAX_BODY": ".http_transport", "HttpLimits": ".http_transport",
         "HttpResponse": ".http_transport", "HttpServer": ".http_transport",
         "DevServer": ".server", "run_dev": ".server"}


__getattr__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "API_PREFIX",
    "MAX_BODY",
    "ApiError",
    "ApiRequest",
    "ApiResponse",
    "DevServer",
    "HttpLimits",
    "HttpResponse",
    "HttpServer",
    "InstanceApi",
    "describe_instance",
    "fetch_handler",
    "run_dev",
]
