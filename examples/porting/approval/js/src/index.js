// Human-in-the-loop approval: hold the funds, wait up to an hour for a manager's
// decision (waitForEvent), then capture or give up. A rejection or no answer in time
// fails the instance and the hold is released. The Python port is ../python/src/entry.py.
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

export class ApprovalWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { amount } = event.payload;

    const hold = await step.do(
      "hold funds",
      async () => ({ hold: `hold-${amount}` }),
      {
        rollback: async ({ output, error }) => {
          console.log(`release ${output.hold} (${error.message})`);
        },
      },
    );

    const decision = await step.waitForEvent("wait for approval", {
      type: "approval",
      timeout: "1 hour",
    });

    if (!decision.payload.approved) {
      throw new NonRetryableError(`rejected by ${decision.payload.by}`);
    }

    return await step.do("capture funds", async () => ({
      captured: amount,
      hold: hold.hold,
      approvedBy: decision.payload.by,
    }));
  }
}
