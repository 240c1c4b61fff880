"""``workflows-emulator dev``: the project's fetch handler over HTTP, plus a JSON API for instances.

Modules: `http_transport` (HTTP/1.1 on aiohttp, with its limits and timeouts), `local_only`
(which Host and Origin are answered), `server` (the dev server: API or Worker, and `run_dev`),
`api_views` (the JSON API, no HTTP), `describe` (an instance's describe document),
`worker_fetch` (the project's fetch handler); the package's `state_lock` keeps one process
per state directory.
"""

from __future__ import annotations

from .api_views import API_PREFIX, ApiError, ApiRequest, ApiResponse, InstanceApi
from .describe import describe_instance
from .http_transport import MAX_BODY, HttpLimits, HttpResponse, HttpServer
from .server import DevServer, run_dev
from .worker_fetch import fetch_handler

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
