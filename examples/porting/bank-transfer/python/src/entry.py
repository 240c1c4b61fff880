"""A bank transfer as a saga, ported from ../js/src/index.js: reserve, debit, credit; a
failure undoes what was done, newest first."""

from workers import Response, WorkerEntrypoint
from workers.workflows import NonRetryableError

from workflows_saga import WorkflowEntrypoint

NO_RETRY = {"retries": {"limit": 0, "delay": 1000, "backoff": "constant"}}


class TransferWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        params = event["payload"]
        source, destination, amount = params["from"], params["to"], params["amount"]
        limit = params.get("limit", 1000)

        async def release(rb):
            print(f"release {rb.output['holdId']}")

        hold = await step.do("reserve funds",
                             lambda: {"holdId": f"hold-{source}-{amount}"},
                             rollback=release)

        async def refund(rb):
            if rb.output is not None:  # JS: output !== undefined
                print(f"refund {rb.output['amount']} to {rb.output['account']}")

        await step.do("debit source",
                      lambda: {"account": source, "amount": amount, "hold": hold["holdId"]},
                      config={"retries": {"limit": 2, "delay": "1 second",
                                          "backoff": "constant"}},
                      rollback=refund,
                      rollback_config={"retries": {"limit": 3, "delay": "1 second"}})

        async def credit():
            if amount > limit:
                raise NonRetryableError(
                    f"{destination}'s bank refused {amount}: over the limit of {limit}")
            return {"account": destination, "amount": amount}

        async def nothing_to_reverse(rb):
            # The failed step's own handler runs first, with output None.
            print(f"nothing to reverse for credit ({rb.error.message}); output={rb.output}")

        return await step.do("credit destination", credit, config=NO_RETRY,
                             rollback=nothing_to_reverse)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        instance = await self.env.TRANSFER.create(params=await request.json())
        return Response.json({"id": instance.id})
