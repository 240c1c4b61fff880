// The benchmark scenarios as a JS Workflow, for wrangler's local engine (miniflare).
//
// JS rather than Python: the point is the engine's cost per step, and a JS Workflow
// skips Pyodide's start-up. Each scenario mirrors one in ../emulator_scenarios.py.
import { WorkflowEntrypoint } from "cloudflare:workers";

const TERMINAL = new Set(["complete", "errored", "terminated"]);
const FAILED_AT = "failed-at:";

export class Bench extends WorkflowEntrypoint {
  async run(event, step) {
    const { scenario, n } = event.payload;
    switch (scenario) {
      case "sequential":
        for (let i = 0; i < n; i++) await step.do("s", async () => i);
        return n;
      case "rollback":
        for (let i = 0; i < n; i++) {
          await step.do("s", async () => i, { rollback: async () => {} });
        }
        // Date.now() moved with the last step's storage I/O: the rollback phase starts here.
        throw new Error(`${FAILED_AT}${Date.now()}`);
      case "parallel":
        await Promise.all(Array.from({ length: n }, (_, i) => step.do(`p${i}`, async () => i)));
        return n;
      case "one-step":
        return await step.do("s", async () => 1);
      default:
        throw new Error(`unknown scenario ${scenario}`);
    }
  }
}

async function settle(env, ids, pollMs) {
  const pending = new Set(ids);
  const last = new Map();
  for (;;) {
    for (const id of [...pending]) {
      const status = await (await env.BENCH.get(id)).status();
      if (TERMINAL.has(status.status)) {
        pending.delete(id);
        last.set(id, status);
      }
    }
    if (pending.size === 0) return last;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

function expectStatus(status, wanted) {
  if (status.status !== wanted) {
    throw new Error(`expected ${wanted}, got ${JSON.stringify(status)}`);
  }
}

// POST / {params, instances?, mode?, pollMs}: run one scenario to its end, answer
// {rollbackMs?} once every instance is terminal. The caller times the request.
export default {
  async fetch(request, env) {
    const body = await request.json();
    const { params, pollMs } = body;
    if (body.mode === "one-by-one") {
      for (let i = 0; i < body.instances; i++) {
        const { id } = await env.BENCH.create({ params });
        expectStatus((await settle(env, [id], pollMs)).get(id), "complete");
      }
      return Response.json({});
    }
    let ids;
    if (body.mode === "at-once") {
      ids = [];
      for (let made = 0; made < body.instances; made += 100) {
        const batch = Array.from({ length: Math.min(100, body.instances - made) }, () => ({ params }));
        ids.push(...(await env.BENCH.createBatch(batch)).map((inst) => inst.id));
      }
    } else {
      ids = [(await env.BENCH.create({ params })).id];
    }
    const last = await settle(env, ids, pollMs);
    const ended = Date.now();
    if (params.scenario !== "rollback") {
      for (const status of last.values()) expectStatus(status, "complete");
      return Response.json({});
    }
    const status = last.get(ids[0]);
    expectStatus(status, "errored");
    const message = String(status.error?.message ?? "");
    if (!message.startsWith(FAILED_AT)) throw new Error(`unexpected error ${message}`);
    return Response.json({ rollbackMs: ended - Number(message.slice(FAILED_AT.length)) });
  },
};
