"""The deployable Worker: a trip-booking saga on Cloudflare Workflows, with ``workflows_saga``.

Each booking step registers a rollback handler; if a later step fails for good, the handlers
run in reverse order and undo what was booked.

HTTP API:
    POST /trips                    body: ``{"traveller": ..., "fail_at": null|"car"}`` -> ``{"id"}``
    GET  /trips/<id>               the instance's status
    POST /trips/<id>/cancel        ``terminate(rollback=True)``: undo what was booked so far

Deploy with ``npx wrangler deploy`` (``wrangler.toml``); ``python_modules/`` must hold
``workers-runtime-sdk`` (``python3 tools/realruntime/vendor.py``).
"""

import json
from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint, python_to_rpc

from workflows_saga import NonRetryableError, WorkflowEntrypoint


class TripBooking(WorkflowEntrypoint):
    async def run(self, event, step):
        trip = event["payload"]
        fail_at = trip.get("fail_at")

        def provider(kind):
            async def book():
                if fail_at == kind:
                    raise NonRetryableError(f"no {kind} available")
                return {"kind": kind, "booking": f"{kind}-{event['instanceId'][:8]}"}

            return book

        async def cancel(rb):
            # rb.output is None when the step itself failed: nothing to cancel then.
            if rb.output is not None:
                print(f"cancelling {rb.output['booking']} because {rb.error}")

        flight = await step.do("book flight", provider("flight"), rollback=cancel)

        @step.do("book hotel", config={"retries": {"limit": 3, "delay": "2 seconds"}})
        async def hotel():
            return await provider("hotel")()

        @hotel.rollback(config={"retries": {"limit": 5, "delay": "1 second"}})
        async def cancel_hotel(rb):
            await cancel(rb)

        await hotel()
        car = await step.do("book car", provider("car"), rollback=cancel)
        return {"traveller": trip.get("traveller"), "flight": flight, "car": car}


def _json(data, status=200):
    return Response(
        json.dumps(data, default=str), status=status, headers={"content-type": "application/json"}
    )


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = [p for p in urlparse(request.url).path.split("/") if p]
        if parts[:1] != ["trips"]:
            return _json({"error": "not found"}, status=404)
        if request.method == "POST" and len(parts) == 1:
            params = json.loads(await request.text() or "{}")
            instance = await self.env.TRIPS.create(params=python_to_rpc(params))
            return _json({"id": instance.id}, status=201)
        if len(parts) >= 2:
            instance = await self.env.TRIPS.get(parts[1])
            if request.method == "GET" and len(parts) == 2:
                return _json(await instance.status())
            if request.method == "POST" and parts[2:] == ["cancel"]:
                await instance.terminate(rollback=True)
                return _json({"id": parts[1], "cancelled": True})
        return _json({"error": "not found"}, status=404)
