"""Book a trip, ported from ../js/src/index.js: flight, hotel and car reserved in parallel
(asyncio.gather for Promise.all), then the card is charged; a failed charge cancels every
reservation, newest-started first."""

import asyncio

from workflows_saga import WorkflowEntrypoint

CHARGE = {"retries": {"limit": 1, "delay": "1 second", "backoff": "constant"}}


class TripWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        trip, items = event["payload"]["trip"], event["payload"]["items"]

        async def cancel(rb):
            print(f"cancel {rb.output['ref']}")

        def reserve(item):
            # The call form starts the step at once, as step.do does in JS.
            return step.do(f"reserve {item}", lambda: {"item": item, "ref": f"{trip}-{item}"},
                           rollback=cancel)

        bookings = await asyncio.gather(*(reserve(item) for item in items))

        async def refund(rb):
            if rb.output is not None:
                print(f"refund {rb.output['charged']}")

        charge = await step.do(
            "charge card",
            lambda: {"charged": len(bookings) * 100, "refs": [b["ref"] for b in bookings]},
            config=CHARGE, rollback=refund)
        return {"trip": trip, "charged": charge["charged"]}
