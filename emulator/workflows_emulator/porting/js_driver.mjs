// Runs workflow instances of a JS Worker project on wrangler's local Workflows engine
// (miniflare from node_modules, Node 22, offline) and writes what the engine logged.
//
// Usage: node js_driver.mjs PLAN.json RESULT.json
//   PLAN: {nodeModules, root, main, modules: [relative .js/.mjs paths], name, compatibilityDate,
//          compatibilityFlags, workflows: {BINDING: {name, className}}, kvNamespaces: {B: id},
//          d1Databases: {B: id}, vars: {...}, persistDir, timeoutMs,
//          runs: [{binding, id, params, faults, events, terminateAt, keepDelays}]}
//   RESULT: {miniflare, workerd, results: [{events, status, handlers} | {error}]}
//
// The project's own modules are loaded unchanged beside one generated module, which is the
// Worker's entry: it re-exports the project, subclasses each workflow class so that the
// rollback handlers passed to step.do record what they receive (the engine does not log
// it), and serves POST /__compare/run, which applies the faults through the binding's
// instance modifier (what cloudflare:test's introspection uses), creates the instance,
// follows subscribe() to its end (sending events, terminating), then reads the whole log
// afresh with a new subscribe() and answers with it: a live subscription can miss events
// when the engine's Durable Object is reset under it (as when an attempt times out).
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [planPath, resultPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, "utf8"));
// miniflare from the node_modules the caller found (the project's or the repository's)
const miniflareDir = path.join(plan.nodeModules, "miniflare");
const { Miniflare, convertV4MiniflareOptions } = await import(
  pathToFileURL(path.join(miniflareDir, "dist", "src", "index.js")).href
);
const versionOf = (name) =>
  JSON.parse(readFileSync(path.join(plan.nodeModules, name, "package.json"), "utf8")).version;
const ENTRY = "__workflows_compare_entry.mjs";

function entrySource() {
  const main = "./" + plan.main.split(path.sep).join("/");
  const classes = [...new Set(Object.values(plan.workflows).map((w) => w.className))];
  const subclasses = classes
    .map((c) => `export class ${c} extends user.${c} {\n` +
      `  async run(event, step) { return super.run(event, traced(step, event.instanceId)); }\n}`)
    .join("\n");
  return `
import * as user from ${JSON.stringify(main)};
export * from ${JSON.stringify(main)};
const seen = new Map();
function record(id, entry) {
  if (!seen.has(id)) seen.set(id, []);
  seen.get(id).push(entry);
}
function plain(value) {
  if (value === undefined) return { undefined: true };
  try { return { value: JSON.parse(JSON.stringify(value)) }; } catch { return { value: String(value) }; }
}
function traced(step, id) {
  return {
    do(...args) {
      const last = args[args.length - 1];
      if (args.length >= 3 && last !== null && typeof last === "object" && typeof last.rollback === "function") {
        const handler = last.rollback;
        args[args.length - 1] = { ...last, rollback: async (rb) => {
          record(id, { stepName: rb.stepName, output: plain(rb.output),
                       error: rb.error ? { name: String(rb.error.name), message: String(rb.error.message) } : null });
          return await handler(rb);
        } };
      }
      return step.do(...args);
    },
    sleep: (...args) => step.sleep(...args),
    sleepUntil: (...args) => step.sleepUntil(...args),
    waitForEvent: (...args) => step.waitForEvent(...args),
  };
}
${subclasses}
const TERMINAL = new Set(["workflow_completed", "workflow_errored", "workflow_terminated"]);
function matches(wanted, stepName) {
  return wanted === stepName || wanted + "-1" === stepName;
}
// Every event of a finished instance, read afresh from its log.
async function allEvents(instance) {
  const events = [];
  const subscription = await instance.subscribe();
  for (;;) {
    const next = await subscription.next();
    if (next.done) return events;
    events.push(next.value);
  }
}
async function runOne(env, spec, timeoutMs) {
  const wf = env[spec.binding];
  const modifier = await wf.unsafeGetInstanceModifier(spec.id);
  if (!spec.keepDelays) {
    await modifier.disableSleeps();
    await modifier.disableRetryDelays();
  }
  for (const f of spec.faults) {
    const sel = { name: f.step, index: f.index };
    if (f.kind === "fail") {
      const error = new Error(f.message);
      await modifier.mockStepError(sel, error, f.times ?? undefined);
    } else if (f.kind === "timeout") {
      await modifier.forceStepTimeout(sel, f.times ?? undefined);
    } else if (f.kind === "event-timeout") {
      await modifier.forceEventTimeout(sel);
    }
  }
  const instance = await wf.create({ id: spec.id, params: spec.params });
  const events = [];
  const pending = [...spec.events];
  let terminated = false;
  let cursor = -1;
  let subscription = null;
  const deadline = Date.now() + timeoutMs;
  // The engine's Durable Object may be reset under a live subscription (it is, when an
  // instance fails): a subscription that breaks is opened again after the last event read.
  for (let finished = false; !finished; ) {
    if (Date.now() > deadline) {
      const status = await instance.status();
      return { error: "the instance did not finish within " + timeoutMs / 1000 + " s (status " +
               status.status + "); does it wait for an event that was not passed?", events };
    }
    let next;
    try {
      subscription ??= await instance.subscribe(cursor < 0 ? undefined : { cursor });
      next = await Promise.race([
        subscription.next(),
        new Promise((resolve) => setTimeout(() => resolve({ idle: true }), 250)),
      ]);
    } catch {
      subscription = null;
      await new Promise((resolve) => setTimeout(resolve, 20));
      continue;
    }
    if (next.idle) continue;
    if (next.done) break;
    const ev = next.value;
    cursor = ev.eventId;
    events.push(ev);
    if (ev.type === "wait_started") {
      const i = pending.findIndex((p) => p.type === ev.eventType);
      if (i >= 0) {
        const [event] = pending.splice(i, 1);
        await instance.sendEvent({ type: event.type, payload: event.payload });
      }
    }
    const started = ev.type === "wait_started" || ev.type === "sleep_started" || ev.type === "step_started";
    if (started && !terminated && pending.length === 0 && spec.terminateAt && matches(spec.terminateAt, ev.stepName)) {
      terminated = true;
      await instance.terminate({ rollback: true });
    }
    finished = TERMINAL.has(ev.type);
  }
  const status = await instance.status();
  delete status.__LOCAL_DEV_STEP_OUTPUTS;
  return { events: await allEvents(instance), status: JSON.parse(JSON.stringify(status, (k, v) => v === undefined ? null : v)),
           handlers: seen.get(spec.id) ?? [] };
}
export default {
  async fetch(request, env) {
    const { spec, timeoutMs } = await request.json();
    try {
      return Response.json(await runOne(env, spec, timeoutMs));
    } catch (error) {
      return Response.json({ error: String(error?.stack ?? error) });
    }
  },
};
`;
}

const modules = [
  { type: "ESModule", path: path.join(plan.root, ENTRY), contents: entrySource() },
  ...plan.modules.map((m) => ({ type: "ESModule", path: path.join(plan.root, m) })),
];

const mf = new Miniflare(
  convertV4MiniflareOptions({
    workers: [
      {
        name: plan.name,
        modules,
        modulesRoot: plan.root,
        compatibilityDate: plan.compatibilityDate,
        compatibilityFlags: plan.compatibilityFlags,
        bindings: plan.vars,
        workflows: plan.workflows,
        kvNamespaces: plan.kvNamespaces,
        d1Databases: plan.d1Databases,
      },
    ],
    resourcePersistencePath: plan.persistDir,
    cf: false, // no download of Request.cf data: this runs offline
  }),
);

const results = [];
try {
  await mf.ready;
  for (const spec of plan.runs) {
    try {
      const response = await mf.dispatchFetch("http://compare.local/__compare/run", {
        method: "POST",
        body: JSON.stringify({ spec, timeoutMs: plan.timeoutMs }),
      });
      const text = await response.text();
      results.push(response.ok ? JSON.parse(text) : { error: `HTTP ${response.status}: ${text.slice(0, 2000)}` });
    } catch (error) {
      results.push({ error: String(error?.message ?? error) });
    }
  }
  writeFileSync(resultPath, JSON.stringify({
    miniflare: versionOf("miniflare"), workerd: versionOf("workerd"), results,
  }));
} finally {
  await mf.dispose();
}
