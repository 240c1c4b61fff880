// The guide's JS Checkout (checkout.mjs, copied from docs/porting.md by the test) with a fake
// PAYMENTS binding, and a fetch handler that runs one instance to its end.
import { Checkout as GuideCheckout } from "./checkout.mjs";

const released = [];
const payments = {
  async hold(orderId, amount) {
    return `hold-${orderId}-${amount}`;
  },
  async release(holdId) {
    released.push(holdId);
  },
  async capture(holdId, attempt) {
    return { captured: holdId, attempt };
  },
};

export class Checkout extends GuideCheckout {
  constructor(ctx, env) {
    super(ctx, env);
    this.env = new Proxy(env, { get: (target, key) => (key === "PAYMENTS" ? payments : target[key]) });
  }
}

const TERMINAL = ["complete", "errored", "terminated"];

// POST / {id, params, event?}: create the instance, send the event (buffered until the
// instance waits for it), poll to a terminal status; answer it with the holds released.
export default {
  async fetch(request, env) {
    const { id, params, event } = await request.json();
    const instance = await env.CHECKOUT.create({ id, params });
    if (event) await instance.sendEvent(event);
    for (;;) {
      const status = await instance.status();
      if (TERMINAL.includes(status.status)) {
        return Response.json({ status: status.status, output: status.output ?? null,
                               error: status.error ?? null, released: [...released] });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  },
};
