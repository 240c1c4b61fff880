// What JS code sees of errors and values crossing the step boundary on wrangler's local engine,
// for the claims of docs/porting.md. Exported as Checkout so that worker.mjs can wrap it; it
// reports through PAYMENTS.release (the fake binding records what it is given).
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

class PaymentDeclined extends Error {
  constructor(message) {
    super(message);
    this.name = "PaymentDeclined";
  }
}

const NO_RETRIES = { retries: { limit: 0, delay: 0 } };

export class Checkout extends WorkflowEntrypoint {
  async run(event, step) {
    const seen = {};
    const caught = (e) => [e.name, e.message, e instanceof NonRetryableError];
    try {
      await step.do("non-retryable", async () => {
        throw new NonRetryableError("card declined");
      });
    } catch (e) {
      seen.nonRetryable = caught(e);
    }
    try {
      await step.do("custom", NO_RETRIES, async () => {
        throw new PaymentDeclined("insufficient funds");
      });
    } catch (e) {
      seen.custom = caught(e);
    }
    try {
      await step.waitForEvent("receipt", { type: "receipt", timeout: "1 second" });
    } catch (e) {
      seen.eventTimeout = caught(e);
    }
    seen.undefinedOutput = (await step.do("nothing", async () => undefined)) === undefined;
    seen.timestampIsDate = event.timestamp instanceof Date;
    await this.env.PAYMENTS.release(seen);
    await step.do(
      "failing",
      NO_RETRIES,
      async () => {
        throw new PaymentDeclined("declined at the end");
      },
      {
        rollback: async ({ error, output }) => {
          await this.env.PAYMENTS.release({ handler: [error.name, error.message, output === undefined] });
        },
      },
    );
  }
}
