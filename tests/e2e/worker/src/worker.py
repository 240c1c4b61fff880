"""The e2e Worker: saga workflows using ``workflows_saga``, run for real by tests/e2e.

HTTP API (driven by tests/e2e over 127.0.0.1):
    POST /start                 body: JSON params (``{"scenario": ...}``) -> ``{"id"}``
    GET  /status/<id>           the instance's ``status()``, as JSON
    GET  /trace/<id>            what the workflow and its rollback handlers recorded
    POST /terminate/<id>        ``terminate(rollback=True)`` (``?rollback=0`` for a plain one)
    GET  /events/<id>           the instance's ``subscribe()`` events (once it has finished)
    POST /event/<id>/<type>     ``send_event``

Every forward step and rollback handler appends an entry to a Durable Object named after the
instance (``TraceLog``), so the tests see what really ran, in what order, with what arguments.
``worker_trace.py`` (shared with tests/differential) is copied here by tools/realruntime/vendor.py.
"""

import asyncio
import json
from urllib.parse import parse_qs, urlparse

from js import JSON
from worker_trace import Trace, TraceStore, describe_error, json_response, plain
from workers import DurableObject, WorkerEntrypoint, python_to_rpc

from workflows_saga import NonRetryableError, WorkflowEntrypoint

# -- trace store: TraceStore, Trace and the JSON helpers come from worker_trace.py --------------


class TraceLog(TraceStore, DurableObject):
    """The ``TRACE`` Durable Object: one append-only trace per workflow instance."""


def rollback_entry(rb):
    return {
        "step": rb.ctx.name if "step" in rb.ctx else None,
        "step_name": rb.step_name,
        "output": rb.output,
        "error": describe_error(rb.error),
        "ctx": dict(rb.ctx),
        "attempt": rb.ctx.attempt if "attempt" in rb.ctx else None,
    }


NO_RETRY = {"retries": {"limit": 0, "delay": 1, "backoff": "constant"}}
FAST_RETRY = {"limit": 3, "delay": 10, "backoff": "constant"}

# -- the workflow ----------------------------------------------------------------------------


class SagaE2E(WorkflowEntrypoint):
    async def run(self, event, step):
        payload = event["payload"]
        log = Trace(self.env, event["instanceId"])
        scenario = getattr(self, "scenario_" + payload["scenario"])
        return await scenario(payload, step, log)

    # Three steps with handlers (decorator keyword, `.rollback` attach form, call form), then
    # a step that fails with a handler of its own.
    async def scenario_sequential(self, payload, step, log):
        async def undo(rb):
            await log.add("rollback", **rollback_entry(rb))

        @step.do("reserve", rollback=undo)
        async def reserve():
            await log.add("forward", step="reserve")
            return {"reservation": "r-1"}

        @step.do("charge")
        async def charge(ctx):
            await log.add("forward", step="charge", ctx=dict(ctx))
            return {"charge": "c-1", "amount": 42}

        @charge.rollback
        async def refund(rb):
            await log.add("rollback", **rollback_entry(rb))

        await reserve()
        await charge()

        async def ship():
            await log.add("forward", step="ship")
            return "parcel-7"

        await step.do("ship", ship, rollback=undo, rollback_config={"retries": FAST_RETRY})

        async def fail():
            await log.add("forward", step="fail")
            raise KeyError("boom")

        await step.do("fail", fail, config=NO_RETRY, rollback=undo)
        return "unreachable"

    # Two concurrent steps: "slow" starts first and finishes last.
    async def scenario_concurrent(self, payload, step, log):
        async def undo(rb):
            await log.add("rollback", **rollback_entry(rb))

        @step.do("slow", rollback=undo)
        async def slow():
            await log.add("forward-start", step="slow")
            await asyncio.sleep(0.8)
            await log.add("forward-end", step="slow")
            return "slow-done"

        @step.do("fast", rollback=undo)
        async def fast():
            await log.add("forward-start", step="fast")
            await log.add("forward-end", step="fast")
            return "fast-done"

        await asyncio.gather(slow(), fast())

        async def fail():
            raise RuntimeError("after the concurrent steps")

        await step.do("fail", fail, config=NO_RETRY)

    # Errors caught in run(): no rollback. Also checks how errors come out of step.do.
    async def scenario_caught(self, payload, step, log):
        async def undo(rb):
            await log.add("rollback", **rollback_entry(rb))

        await step.do("book", lambda: "booked", rollback=undo)

        async def raise_value():
            raise ValueError("bad value")

        async def raise_key():
            raise KeyError("missing")

        async def raise_nonretryable():
            await log.add("attempt", step="nonretryable")
            raise NonRetryableError("stop now")

        cases = [
            ("value", raise_value, NO_RETRY),
            ("key", raise_key, NO_RETRY),
            ("nonretryable", raise_nonretryable, {"retries": FAST_RETRY}),
        ]
        for name, fn, config in cases:
            try:
                await step.do(name, fn, config=config, rollback=undo)
            except Exception as exc:
                await log.add("caught", step=name, error=describe_error(exc))
        return {"finished": True}

    # A handler that fails twice, then succeeds, under rollback_config retries.
    async def scenario_retries(self, payload, step, log):
        async def undo_first(rb):
            await log.add("rollback", **rollback_entry(rb))

        async def flaky_refund(rb):
            await log.add("rollback-attempt", **rollback_entry(rb))
            if await log.count("rollback-attempt") < 3:
                raise RuntimeError("refund service unavailable")
            await log.add("rollback", **rollback_entry(rb))

        await step.do("first", lambda: 1, rollback=undo_first)
        await step.do(
            "charge",
            lambda: {"charge": "c-9"},
            rollback=flaky_refund,
            rollback_config={"retries": FAST_RETRY, "timeout": "30 seconds"},
        )

        async def fail():
            raise ValueError("card declined")

        await step.do("fail", fail, config=NO_RETRY)

    # A handler raising NonRetryableError (or exhausting its retries) halts the chain.
    async def scenario_halt(self, payload, step, log):
        mode = payload.get("mode", "nonretryable")

        async def undo_first(rb):
            await log.add("rollback", **rollback_entry(rb))

        async def bad_refund(rb):
            await log.add("rollback-attempt", **rollback_entry(rb))
            if mode == "nonretryable":
                raise NonRetryableError("refund refused")
            raise RuntimeError("refund failed")

        limit = FAST_RETRY if mode == "nonretryable" else {**FAST_RETRY, "limit": 1}
        await step.do("first", lambda: 1, rollback=undo_first)
        await step.do("charge", lambda: 2, rollback=bad_refund, rollback_config={"retries": limit})

        async def fail():
            raise ValueError("card declined")

        await step.do("fail", fail, config=NO_RETRY)

    # Completes a step, then waits; the test terminates it with rollback=True.
    async def scenario_terminate(self, payload, step, log):
        async def undo(rb):
            await log.add("rollback", **rollback_entry(rb))

        @step.do("hold", rollback=undo)
        async def hold():
            await log.add("forward", step="hold")
            return {"held": True}

        await hold()
        await step.wait_for_event("wait", "never-sent", timeout="1 hour")
        await log.add("forward", step="after-wait")

    # Succeeds: nothing is rolled back.
    async def scenario_success(self, payload, step, log):
        async def undo(rb):
            await log.add("rollback", **rollback_entry(rb))

        first = await step.do("one", lambda: 1, rollback=undo)
        second = await step.do("two", lambda ctx: ctx.attempt + first, rollback=undo)
        return {"sum": second}


# -- HTTP front door -------------------------------------------------------------------------


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        try:
            if request.method == "POST" and parts == ["start"]:
                params = json.loads(await request.text())
                instance = await self.env.SAGA.create(params=python_to_rpc(params))
                return json_response({"id": instance.id})
            if request.method == "GET" and len(parts) == 2 and parts[0] == "status":
                instance = await self.env.SAGA.get(parts[1])
                return json_response(plain(await instance.status()))
            if request.method == "GET" and len(parts) == 2 and parts[0] == "trace":
                raw = await self.env.TRACE.getByName(parts[1]).entries()
                return json_response(json.loads(raw))
            if request.method == "POST" and len(parts) == 2 and parts[0] == "terminate":
                instance = await self.env.SAGA.get(parts[1])
                rollback = query.get("rollback", ["1"])[0] != "0"
                await instance.terminate(rollback=rollback)
                return json_response({"terminated": parts[1], "rollback": rollback})
            if request.method == "GET" and len(parts) == 2 and parts[0] == "events":
                return json_response(await self._events(parts[1]))
            if request.method == "POST" and len(parts) == 3 and parts[0] == "event":
                instance = await self.env.SAGA.get(parts[1])
                await instance.send_event(type=parts[2], payload={"from": "test"})
                return json_response({"sent": parts[2]})
        except Exception as exc:
            return json_response({"error": type(exc).__name__, "message": str(exc)}, status=500)
        return json_response({"error": "not found", "path": url.path}, status=404)

    async def _events(self, instance_id):
        # subscribe() is not wrapped by the SDK: use the raw JS instance; the subscription
        # ends after the workflow_completed / _errored / _terminated event.
        instance = await self.env.SAGA.get(instance_id)
        raw = getattr(instance, "_binding", instance)
        subscription = await raw.subscribe()
        events = []
        for _ in range(500):
            item = await subscription.next()
            if item.done:
                break
            events.append(json.loads(JSON.stringify(item.value)))
        return events
