// Provision a server: network, VM, disk, each undone by its own rollback handler with a
// rollbackConfig (retries and timeout for the undo itself). When the health check fails,
// the undo runs newest first; tearing the VM down fails once ("still stopping") and is
// retried as its rollbackConfig allows. The Python port is ../python/src/entry.py.
import { WorkflowEntrypoint } from "cloudflare:workers";

const UNDO = { retries: { limit: 2, delay: "5 seconds", backoff: "constant" }, timeout: "1 minute" };
const teardownCalls = new Map(); // per instance: how often the VM's undo ran

export class ProvisionWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { name, size } = event.payload;

    const network = await step.do(
      "create network",
      async () => ({ network: `net-${name}` }),
      { rollback: async ({ output }) => console.log(`delete ${output.network}`), rollbackConfig: UNDO },
    );

    const vm = await step.do(
      "create vm",
      { retries: { limit: 2, delay: "10 seconds" }, timeout: "2 minutes" },
      async () => ({ vm: `vm-${name}`, network: network.network, size }),
      {
        rollback: async ({ output }) => {
          const calls = (teardownCalls.get(event.instanceId) ?? 0) + 1;
          teardownCalls.set(event.instanceId, calls);
          if (calls === 1) throw new Error(`${output.vm} is still stopping`);
          console.log(`destroy ${output.vm}`);
        },
        rollbackConfig: UNDO,
      },
    );

    await step.do(
      "attach disk",
      async () => ({ disk: `disk-${name}`, vm: vm.vm }),
      { rollback: async ({ output }) => console.log(`detach ${output.disk}`), rollbackConfig: UNDO },
    );

    return await step.do(
      "health check",
      { retries: { limit: 2, delay: "3 seconds", backoff: "linear" } },
      async () => ({ healthy: vm.vm }),
    );
  }
}
