// Runs a list of D1 operations through a JS Worker on wrangler's local runtime (miniflare from
// the repository's node_modules, Node 22) and prints what each returned, as JSON on stdout.
//
// Usage: node d1_driver.mjs OPS.json PERSIST_DIR
//   OPS: [{op, sql?, params?, column?, columnNames?, statements?}, ...] where op is one of
//        run | all | first | raw | batch | exec | bind. A byte value in params is written
//        {"$bytes": [0-255, ...]} and becomes a Uint8Array before it is bound.
//   Output: {miniflare, results: [{ok: value} | {error: message}, ...]} (one entry per op).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

const [opsPath, persistDir] = process.argv.slice(2);
const ops = JSON.parse(readFileSync(opsPath, "utf8"));
const require = createRequire(import.meta.url);

// The Worker: each operation runs against env.DB; an exception becomes {error: message}.
const script = `
const decode = (value) =>
  value !== null && typeof value === "object" && Array.isArray(value.$bytes)
    ? new Uint8Array(value.$bytes) : value;
const statement = (db, s) => {
  const prepared = db.prepare(s.sql);
  return s.params === undefined ? prepared : prepared.bind(...s.params.map(decode));
};
async function runOp(db, op) {
  switch (op.op) {
    case "run": return await statement(db, op).run();
    case "all": return await statement(db, op).all();
    case "first":
      return op.column === undefined ? await statement(db, op).first()
                                     : await statement(db, op).first(op.column);
    case "raw":
      return op.columnNames === undefined ? await statement(db, op).raw()
                                          : await statement(db, op).raw({ columnNames: op.columnNames });
    case "batch": return await db.batch(op.statements.map((s) => statement(db, s)));
    case "exec": return await db.exec(op.sql);
    case "bind": statement(db, op); return "bound";
    default: throw new Error("unknown op " + op.op);
  }
}
export default {
  async fetch(request, env) {
    const results = [];
    for (const op of await request.json()) {
      try {
        const value = await runOp(env.DB, op);
        results.push({ ok: value === undefined ? null : value });
      } catch (error) {
        results.push({ error: String(error?.message ?? error) });
      }
    }
    return Response.json(results);
  },
};
`;

const mf = new Miniflare(
  convertV4MiniflareOptions({
    workers: [
      {
        name: "d1",
        modules: true,
        script,
        compatibilityDate: "2026-10-01",
        d1Databases: { DB: "differential-db" },
      },
    ],
    resourcePersistencePath: persistDir, // on disk, as `wrangler dev` keeps it
    cf: false, // no download of Request.cf data: this runs offline
  }),
);
try {
  const response = await mf.dispatchFetch("http://d1.local/", {
    method: "POST",
    body: JSON.stringify(ops),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${text.slice(0, 500)}`);
  const miniflare = require("miniflare/package.json").version;
  process.stdout.write(JSON.stringify({ miniflare, results: JSON.parse(text) }));
} finally {
  await mf.dispose();
}
