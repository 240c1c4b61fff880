// Book a trip: flight, hotel and car are reserved in parallel (Promise.all), then the
// card is charged. If the charge fails, every reservation is cancelled, newest-started
// first. The Python port is ../python/src/entry.py.
import { WorkflowEntrypoint } from "cloudflare:workers";

const CHARGE = { retries: { limit: 1, delay: "1 second", backoff: "constant" } };

export class TripWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { trip, items } = event.payload;

    const reserve = (item) =>
      step.do(
        `reserve ${item}`,
        async () => ({ item, ref: `${trip}-${item}` }),
        {
          rollback: async ({ output }) => {
            console.log(`cancel ${output.ref}`);
          },
        },
      );

    const bookings = await Promise.all(items.map(reserve));

    const charge = await step.do(
      "charge card",
      CHARGE,
      async () => ({ charged: bookings.length * 100, refs: bookings.map((b) => b.ref) }),
      {
        rollback: async ({ output }) => {
          if (output !== undefined) console.log(`refund ${output.charged}`);
        },
      },
    );
    return { trip, charged: charge.charged };
  }
}
