// Runs the guide's JS Checkout on wrangler's local Workflows engine (miniflare from the
// repository's node_modules, offline) and prints one JSON answer per scenario.
//
// Usage: node driver.mjs FOLDER SCENARIOS.json   (FOLDER holds worker.mjs and checkout.mjs)
import { readFileSync } from "node:fs";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

const [folder, scenariosPath] = process.argv.slice(2);
const scenarios = JSON.parse(readFileSync(scenariosPath, "utf8"));
const mf = new Miniflare(
  convertV4MiniflareOptions({
    workers: [
      {
        name: "guide",
        modules: ["worker.mjs", "checkout.mjs"].map((name) => ({
          type: "ESModule",
          path: `${folder}/${name}`,
        })),
        modulesRoot: folder,
        compatibilityDate: "2026-10-01",
        // Listed although the date implies it: without it, miniflare's engine still replaces
        // a NonRetryableError's message with the generic WorkflowFatalError (checked).
        compatibilityFlags: ["workflows_preserve_non_retryable_error_message"],
        workflows: { CHECKOUT: { name: "checkout", className: "Checkout" } },
      },
    ],
    cf: false,
  }),
);
try {
  const answers = [];
  for (const scenario of scenarios) {
    const response = await mf.dispatchFetch("http://guide.local/", {
      method: "POST",
      body: JSON.stringify(scenario),
    });
    answers.push(await response.json());
  }
  console.log(JSON.stringify(answers));
} finally {
  await mf.dispose();
}
