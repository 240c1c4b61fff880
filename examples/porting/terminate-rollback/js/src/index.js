// Onboarding that waits for the customer to activate their card. An operator who gives
// up terminates the instance with rollback (instance.terminate({ rollback: true }) or
// `wrangler workflows instances terminate --rollback`): the card is cancelled and the
// account closed, newest first, and the instance ends "terminated".
// The Python port is ../python/src/entry.py.
import { WorkflowEntrypoint } from "cloudflare:workers";

export class OnboardingWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { customer } = event.payload;

    const account = await step.do("open account", async () => ({ account: `acct-${customer}` }), {
      rollback: async ({ output, error }) => {
        console.log(`close ${output.account}: ${error.message}`);
      },
    });

    const card = await step.do("issue card", async () => ({ card: `card-${customer}` }), {
      rollback: async ({ output }) => {
        console.log(`cancel ${output.card}`);
      },
    });

    const activation = await step.waitForEvent("wait for activation", {
      type: "activated",
      timeout: "7 days",
    });

    return await step.do("welcome", async () => ({
      account: account.account,
      card: card.card,
      pin: activation.payload.pinSet,
    }));
  }
}
