"""Human-in-the-loop approval, ported from ../js/src/index.js: hold the funds, wait up to
an hour for a manager's decision, then capture or give up (the hold is released)."""

from workers.workflows import NonRetryableError

from workflows_saga import WorkflowEntrypoint


class ApprovalWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        amount = event["payload"]["amount"]

        async def release(rb):
            print(f"release {rb.output['hold']} ({rb.error.message})")

        hold = await step.do("hold funds", lambda: {"hold": f"hold-{amount}"},
                             rollback=release)

        # JS: step.waitForEvent(name, {type, timeout}); Python: positional name and type.
        decision = await step.wait_for_event("wait for approval", "approval",
                                             timeout="1 hour")

        if not decision["payload"]["approved"]:
            raise NonRetryableError(f"rejected by {decision['payload']['by']}")

        return await step.do("capture funds", lambda: {
            "captured": amount, "hold": hold["hold"],
            "approvedBy": decision["payload"]["by"]})
