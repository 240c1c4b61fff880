"""The differential tier's Worker: serves the workflows of ``saga_scenarios.py`` (shared with
the emulator side of tests/differential) under workerd + wrangler's local Workflows engine.

HTTP API (driven by tests/differential over 127.0.0.1):
    POST /start/<Class>         body: JSON params -> ``{"id"}``
    GET  /status/<Class>/<id>   the instance's ``status()``, as JSON
    GET  /trace/<id>            what the workflow and its rollback handlers recorded
    POST /terminate/<Class>/<id>   ``terminate(rollback=True)`` issued from Python
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
from workers import DurableObject, Response, WorkerEntrypoint, python_to_rpc


class TraceLog(DurableObject):
    """An append-only list of JSON entries (one object per workflow instance)."""

    async def _load(self):
        raw = await self.ctx.storage.get("log")
        return json.loads(raw) if isinstance(raw, str) else []

    async def append(self, entry):
        log = await self._load()
        log.append(json.loads(entry))
        await self.ctx.storage.put("log", json.dumps(log))
        return len(log)

    async def count(self, kind):
        return sum(1 for e in await self._load() if e.get("kind") == kind)

    async def entries(self):
        return json.dumps(await self._load())


def _json(data, status=200):
    return Response(
        json.dumps(data, default=repr), status=status, headers={"content-type": "application/json"}
    )


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = [p for p in urlparse(request.url).path.split("/") if p]
        try:
            if request.method == "POST" and len(parts) == 2 and parts[0] == "start":
                params = json.loads(await request.text())
                binding = getattr(self.env, parts[1])
                instance = await binding.create(params=python_to_rpc(params))
                return _json({"id": instance.id})
            if request.method == "GET" and len(parts) == 3 and parts[0] == "status":
                instance = await getattr(self.env, parts[1]).get(parts[2])
                return _json(_plain(await instance.status()))
            if request.method == "POST" and len(parts) == 3 and parts[0] == "terminate":
                instance = await getattr(self.env, parts[1]).get(parts[2])
                await instance.terminate(rollback=True)
                return _json({"terminated": parts[2]})
            if request.method == "GET" and len(parts) == 2 and parts[0] == "trace":
                raw = await self.env.TRACE.getByName(parts[1]).entries()
                return _json(json.loads(raw))
        except Exception as exc:
            return _json({"error": type(exc).__name__, "message": str(exc)}, status=500)
        return _json({"error": "not found", "path": parts}, status=404)
