// Runs the benchmark scenarios on wrangler's local Workflows engine (miniflare from the
// repository's node_modules) and writes the timings as JSON.
//
// Usage: node driver.mjs PLAN.json RESULT.json
//   PLAN: {persistDir, repeat, pollMs, scenarios: [{key, label, params, mode?, instances?, per}]}
//   RESULT: {miniflare, workerd, startupMs, results: {key: {samples: [µs per unit...]} | {error}}}
// Repetitions are interleaved (each round runs every scenario once) so that drift in the
// machine's speed spreads over all scenarios alike.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

const [planPath, resultPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, "utf8"));
const require = createRequire(import.meta.url);
const versionOf = (name) => require(`${name}/package.json`).version;
const here = fileURLToPath(new URL(".", import.meta.url));

const mf = new Miniflare(
  convertV4MiniflareOptions({
    workers: [
      {
        name: "bench",
        modules: true,
        scriptPath: `${here}worker.mjs`,
        modulesRoot: here, // module names are relative to it, whatever the working folder
        compatibilityDate: "2026-10-01",
        workflows: { BENCH: { name: "bench", className: "Bench" } },
      },
    ],
    resourcePersistencePath: plan.persistDir, // on disk, as `wrangler dev` keeps it
    cf: false, // no download of Request.cf data: this runs offline
  }),
);

async function runOnce(scenario) {
  const body = { params: scenario.params, mode: scenario.mode, instances: scenario.instances, pollMs: plan.pollMs };
  const started = performance.now();
  const response = await mf.dispatchFetch("http://bench.local/", { method: "POST", body: JSON.stringify(body) });
  const text = await response.text();
  const elapsedMs = performance.now() - started;
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${text.slice(0, 500)}`);
  const answer = JSON.parse(text);
  // µs per unit (step, handler or instance); a rollback is timed from the failure.
  return ((answer.rollbackMs ?? elapsedMs) * 1000) / scenario.per;
}

const results = {};
const startup = performance.now();
try {
  await mf.ready;
  const startupMs = performance.now() - startup;
  for (const scenario of plan.scenarios) results[scenario.key] = { samples: [] };
  for (let round = 0; round < plan.repeat; round++) {
    for (const scenario of plan.scenarios) {
      const entry = results[scenario.key];
      if (entry.error !== undefined) continue;
      console.log(`bench: round ${round + 1}/${plan.repeat}: wrangler, ${scenario.label}`);
      try {
        entry.samples.push(await runOnce(scenario));
      } catch (error) {
        results[scenario.key] = { error: String(error?.message ?? error).split("\n")[0] };
      }
    }
  }
  writeFileSync(
    resultPath,
    JSON.stringify({ miniflare: versionOf("miniflare"), workerd: versionOf("workerd"), startupMs, results }),
  );
} finally {
  await mf.dispose();
}
