"""``workflows-emulator dev``: the project's fetch handler over HTTP, plus a JSON API for instances.

Modules: `http_transport` (HTTP/1.1 bytes and the accept loop), `server` (the dev server:
API or Worker, and `run_dev`), `api_views` (the JSON API, no HTTP), `describe` (an
instance's describe document), `worker_fetch` (the project's fetch handler) and
the package's `state_lock` (one process per state directory).
"""

from __future__ import annotations

from .api_views import API_PREFIX, ApiError, ApiRequest, ApiResponse, InstanceApi
from .describe import describe_instance
from .http_transport import HttpResponse, HttpServer
from .server import DevServer, run_dev
from .worker_fetch import fetch_handler

__all__ = [
    "API_PREFIX",
    "ApiError",
    "ApiRequest",
    "ApiResponse",
    "DevServer",
    "HttpResponse",
    "HttpServer",
    "InstanceApi",
    "describe_instance",
    "fetch_handler",
    "run_dev",
]
