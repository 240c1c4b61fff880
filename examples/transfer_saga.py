"""A money transfer as a saga, run on the embedded emulator: it fails and rolls back.

Run it with ``make demo`` (or ``.venv/bin/python examples/transfer_saga.py``). It prints
each step, each attempt and the rollback phase as the engine records them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from workflows_emulator import Emulator
from workflows_saga import NonRetryableError, RollbackContext, WorkflowEntrypoint, WorkflowStep

LEDGER: list[str] = []  # stands in for the bank's side effects


class Transfer(WorkflowEntrypoint):
    """Debit one account, credit another, notify; undo what was done if anything fails."""

    async def run(self, event: dict[str, Any], step: WorkflowStep) -> Any:
        transfer = event["payload"]

        @step.do(config={"retries": {"limit": 2, "delay": "5 seconds"}})
        async def reserve_funds() -> dict[str, Any]:
            LEDGER.append(f"hold {transfer['amount']} on {transfer['from']}")
            return {"hold_id": "hold-1", "amount": transfer["amount"]}

        @reserve_funds.rollback
        async def release(rb: RollbackContext[dict[str, Any]]) -> None:
            if rb.output is not None:
                LEDGER.append(f"release {rb.output['hold_id']}")

        @step.do(rollback_config={"retries": {"limit": 3, "delay": "1 second"}})
        async def debit(reserve_funds: dict[str, Any]) -> dict[str, Any]:
            # a parameter named after an earlier step receives its output (as in the SDK)
            LEDGER.append(f"debit {reserve_funds['amount']} from {transfer['from']}")
            return {"debit_id": "deb-1"}

        @debit.rollback
        async def refund(rb: RollbackContext[dict[str, Any]]) -> None:
            LEDGER.append(f"refund {rb.output['debit_id'] if rb.output else '(nothing)'}")

        await reserve_funds()
        await debit()

        async def credit(ctx: dict[str, Any]) -> None:
            LEDGER.append(f"credit attempt {ctx['attempt']} to {transfer['to']}")
            raise NonRetryableError(f"account {transfer['to']} is closed")

        async def reverse_credit(rb: RollbackContext[Any]) -> None:
            LEDGER.append(f"reverse credit (output={rb.output!r}, because: {rb.error})")

        await step.do("credit", credit, rollback=reverse_credit)
        return "transferred"


def describe(event: dict[str, Any]) -> str:
    data = event["data"] or {}
    what = event["event"]
    where = f" {event['step']}" if event["step"] else ""
    attempt = f" attempt {event['attempt']}" if event["attempt"] else ""
    extra = ""
    if "error" in data:
        extra = f"  error={data['error']['name']}: {data['error']['message']}"
    if "retryDelayMs" in data:
        extra += f"  retry in {data['retryDelayMs']} ms"
    if what == "ROLLBACK_START":
        extra = f"  handlers={data['totalSteps']}"
    return f"{what}{where}{attempt}{extra}"


async def main() -> dict[str, Any]:
    async with Emulator() as emu:
        transfers = emu.workflow(Transfer, name="transfer")
        instance = await transfers.create(
            id="transfer-1", params={"from": "alice", "to": "bob", "amount": 25}
        )
        status = await instance.wait()
        print("== engine log ==")
        for event in instance.events():
            print("  " + describe(event))
        print("== side effects, in order ==")
        for line in LEDGER:
            print("  " + line)
        print("== final status ==")
        print(f"  {status}")
        return status


if __name__ == "__main__":
    asyncio.run(main())
