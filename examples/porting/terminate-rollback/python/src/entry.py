"""Onboarding, ported from ../js/src/index.js: open an account, issue a card, wait for the
customer to activate it; terminating with rollback (instance.terminate(rollback=True) or
`workflows-emulator workflows instances terminate --rollback`) undoes both."""

from workflows_saga import WorkflowEntrypoint


class OnboardingWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        customer = event["payload"]["customer"]

        async def close(rb):
            print(f"close {rb.output['account']}: {rb.error.message}")

        account = await step.do("open account", lambda: {"account": f"acct-{customer}"},
                                rollback=close)

        async def cancel(rb):
            print(f"cancel {rb.output['card']}")

        card = await step.do("issue card", lambda: {"card": f"card-{customer}"},
                             rollback=cancel)

        activation = await step.wait_for_event("wait for activation", "activated",
                                               timeout="7 days")

        return await step.do("welcome", lambda: {
            "account": account["account"], "card": card["card"],
            "pin": activation["payload"]["pinSet"]})
