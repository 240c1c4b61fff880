// A bank transfer as a saga: reserve, debit, credit; a failure undoes what was done,
// newest first. The Python port is ../python/src/entry.py.
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

const NO_RETRY = { retries: { limit: 0, delay: 1000, backoff: "constant" } };

export class TransferWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { from, to, amount, limit = 1000 } = event.payload;

    const hold = await step.do(
      "reserve funds",
      async () => ({ holdId: `hold-${from}-${amount}` }),
      {
        rollback: async ({ output }) => {
          console.log(`release ${output.holdId}`);
        },
      },
    );

    await step.do(
      "debit source",
      { retries: { limit: 2, delay: "1 second", backoff: "constant" } },
      async () => ({ account: from, amount, hold: hold.holdId }),
      {
        rollback: async ({ output }) => {
          if (output !== undefined) console.log(`refund ${output.amount} to ${output.account}`);
        },
        rollbackConfig: { retries: { limit: 3, delay: "1 second" } },
      },
    );

    return await step.do(
      "credit destination",
      NO_RETRY,
      async () => {
        if (amount > limit) {
          throw new NonRetryableError(`${to}'s bank refused ${amount}: over the limit of ${limit}`);
        }
        return { account: to, amount };
      },
      {
        rollback: async ({ output, error }) => {
          // The failed step's own handler runs first, with output undefined.
          console.log(`nothing to reverse for credit (${error.message}); output=${output}`);
        },
      },
    );
  }
}

export default {
  async fetch(request, env) {
    const instance = await env.TRANSFER.create({ params: await request.json() });
    return Response.json({ id: instance.id });
  },
};
