"""A money transfer as a saga: debit, credit, and undo in reverse order when a step fails.

HTTP API:
    POST /transfers         body {"from", "to", "amount"} -> {"id", "status"}
    GET  /transfers/<id>    the instance's status()
"""

import json
from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint
from workers.workflows import NonRetryableError

from workflows_saga import WorkflowEntrypoint

NO_RETRY = {"retries": {"limit": 0, "delay": 1000, "backoff": "constant"}}


class TransferWorkflow(WorkflowEntrypoint):
    """Reserve, debit, credit; a credit over the limit is refused and everything is undone."""

    async def run(self, event, step):
        params = event["payload"]
        amount = int(params["amount"])
        limit = int(self.env.CREDIT_LIMIT)

        async def release(rb):
            print(f"rollback: release hold {rb.output['hold_id']}")

        @step.do("reserve funds", rollback=release)
        async def reserve():
            return {"hold_id": f"hold-{params['from']}-{amount}"}

        async def refund(rb):
            print(f"rollback: refund {rb.output['amount']} to {rb.output['account']}")

        hold = await reserve()

        @step.do("debit source", rollback=refund)
        async def debit():
            return {"account": params["from"], "amount": amount, "hold": hold["hold_id"]}

        await debit()

        async def reverse_credit(rb):
            # The failed step's own handler runs first, with no output (it never returned).
            print(f"rollback: nothing to reverse for {rb.step_name} (output={rb.output})")

        @step.do("credit destination", config=NO_RETRY, rollback=reverse_credit)
        async def credit():
            if amount > limit:
                raise NonRetryableError(
                    f"{params['to']}'s bank refused {amount}: over the limit of {limit}"
                )
            return {"account": params["to"], "amount": amount}

        return await credit()


class Default(WorkerEntrypoint):
    """Starts transfers and reports on them."""

    async def fetch(self, request):
        path = urlparse(request.url).path.rstrip("/")
        if request.method == "POST" and path == "/transfers":
            body = await request.json()
            instance = await self.env.TRANSFER.create(params=body)
            return Response.json({"id": instance.id, "status": await instance.status()})
        if request.method == "GET" and path.startswith("/transfers/"):
            instance = await self.env.TRANSFER.get(path.rsplit("/", 1)[1])
            return Response.json(await instance.status())
        return Response(json.dumps({"error": "try POST /transfers"}), status=404,
                        headers={"content-type": "application/json"})
