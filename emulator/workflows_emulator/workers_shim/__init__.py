"""A CPython stand-in for the Python Workers ``workers`` module, installed while a project runs."""

from __future__ import annotations

from . import workflows
from .entrypoints import DurableObject, WorkerEntrypoint, WorkflowEntrypoint, handler
from .env import Env, ExecutionContext, WorkflowBinding, WorkflowInstance
from .http import FetchResponse, Request, Response
from .outbound import fetch
from .rpc import JsDict, python_from_rpc, python_to_rpc

__all__ = [
    "DurableObject",
    "Env",
    "ExecutionContext",
    "FetchResponse",
    "JsDict",
    "Request",
    "Response",
    "WorkerEntrypoint",
    "WorkflowBinding",
    "WorkflowEntrypoint",
    "WorkflowInstance",
    "fetch",
    "handler",
    "python_from_rpc",
    "python_to_rpc",
    "workflows",
]
