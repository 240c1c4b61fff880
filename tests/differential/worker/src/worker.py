"""The differential tier's Worker: serves the workflows of ``saga_scenarios.py`` (shared with
the emulator side of tests/differential) under workerd + wrangler's local Workflows engine.

HTTP API (driven by tests/differential over 127.0.0.1):
    POST /start/<Class>         body: JSON params -> ``{"id"}``
    GET  /status/<Class>/<id>   the instance's ``status()``, as JSON
    GET  /trace/<id>            what the workflow and its rollback handlers recorded
    POST /terminate/<Class>/<id>   ``terminate(rollback=True)`` issued from Python

``worker_trace.py`` (shared with tests/e2e) is copied here by tools/realruntime/vendor.py.
"""

import json
from urllib.parse import urlparse

from saga_scenarios import (  # noqa: F401  (the workflow classes are exported from here)
    WORKFLOWS,
    ApprovalSaga,
    CaughtSaga,
    ConcurrentSaga,
    HaltSaga,
    RetrySaga,
    SequentialSaga,
    SuccessSaga,
)
from worker_trace import TraceStore, json_response, plain
from workers import DurableObject, WorkerEntrypoint, python_to_rpc


class TraceLog(TraceStore, DurableObject):
    """The ``TRACE`` Durable Object: one append-only trace per workflow instance."""


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = [p for p in urlparse(request.url).path.split("/") if p]
        try:
            if request.method == "POST" and len(parts) == 2 and parts[0] == "start":
                params = json.loads(await request.text())
                binding = getattr(self.env, parts[1])
                instance = await binding.create(params=python_to_rpc(params))
                return json_response({"id": instance.id})
            if request.method == "GET" and len(parts) == 3 and parts[0] == "status":
                instance = await getattr(self.env, parts[1]).get(parts[2])
                return json_response(plain(await instance.status()))
            if request.method == "POST" and len(parts) == 3 and parts[0] == "terminate":
                instance = await getattr(self.env, parts[1]).get(parts[2])
                await instance.terminate(rollback=True)
                return json_response({"terminated": parts[2]})
            if request.method == "GET" and len(parts) == 2 and parts[0] == "trace":
                raw = await self.env.TRACE.getByName(parts[1]).entries()
                return json_response(json.loads(raw))
        except Exception as exc:
            return json_response({"error": type(exc).__name__, "message": str(exc)}, status=500)
        return json_response({"error": "not found", "path": parts}, status=404)
