"""Trace recording and JSON helpers shared by the test Workers (tests/e2e, tests/differential).

The single source: ``tools/realruntime/vendor.py`` copies this file into each Worker's ``src/``
(git ignores the copies) before ``wrangler dev`` starts; the emulator side of tests/differential
imports it from here (``tests/realruntime_worker_common`` is on pytest's ``pythonpath``).

- `TraceStore`: the methods of the ``TRACE`` Durable Object, an append-only list of JSON entries
  (one object per workflow instance). Each Worker declares ``class TraceLog(TraceStore,
  DurableObject)``, so that importing this module never needs ``workers``.
- `Trace`: what a workflow uses to record into the object named after its instance.
- `describe_error`, `plain`, `json_response`: JSON views of errors and values.
"""

import json

from workflows_saga import StepError


class TraceStore:
    """Durable Object methods over one stored JSON list (``self.ctx.storage``, key ``log``)."""

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


class Trace:
    """Records entries ``{"kind": ..., **data}`` into ``env.TRACE``'s object for ``instance_id``."""

    def __init__(self, env, instance_id):
        self._stub = env.TRACE.getByName(instance_id)

    async def add(self, kind, **data):
        return await self._stub.append(json.dumps({"kind": kind, **data}, default=repr))

    async def count(self, kind):
        return int(await self._stub.count(kind))


def describe_error(exc):
    """An error as the traces record it: Python type, ``name`` (StepError) and message."""
    return {
        "type": type(exc).__name__,
        "name": getattr(exc, "name", None),
        "message": getattr(exc, "message", None) if isinstance(exc, StepError) else str(exc),
    }


def plain(value):
    """``value`` with anything that is not JSON (JS proxies, datetimes) replaced by its repr."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def json_response(data, status=200):
    """A ``workers.Response`` holding ``data`` as JSON."""
    from workers import Response  # only inside a Worker

    return Response(
        json.dumps(data, default=repr), status=status, headers={"content-type": "application/json"}
    )
