// Runs a list of KV and R2 operations on wrangler's local runtime (miniflare from the
// repository's node_modules) and prints one JSON array of results on stdout.
//
// Usage: node kv_r2_driver.mjs OPS.json
//   OPS: {kvNow: seconds, ops: [{op: "kv.put" | "kv.get" | ... | "advance", ...}]}
// The KV namespace's clock is miniflare's fake timer, started at `kvNow` seconds and moved
// by {op: "advance", ms}; every other op runs inside one inline Worker (one dispatchFetch
// per op) and answers {ok: value} or {error: {name, message}}.
import { readFileSync } from "node:fs";
import { Miniflare, _enableControlEndpoints, convertV4MiniflareOptions } from "miniflare";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));

// The Worker: each request body is one op; the answer is its JSON-safe result.
const WORKER = `
function plain(value) {
  if (value instanceof Date) return { $date: value.getTime() };
  if (value instanceof Map) return { $map: [...value.entries()].map(([k, v]) => [k, plain(v)]) };
  if (value instanceof ArrayBuffer) return { $bytes: [...new Uint8Array(value)] };
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value === undefined ? { $undefined: true } : value;
}
function object(o) {
  if (o === null) return null;
  return {
    key: o.key, version: o.version, size: o.size, etag: o.etag, httpEtag: o.httpEtag,
    uploaded: plain(o.uploaded), httpMetadata: plain(o.httpMetadata),
    customMetadata: plain(o.customMetadata), checksums: o.checksums.toJSON(),
    range: plain(o.range), storageClass: o.storageClass,
  };
}
function value(v) {
  return typeof v === "object" && v !== null && "$bytes" in v ? new Uint8Array(v.$bytes) : v;
}
async function run(op, env) {
  switch (op.op) {
    case "kv.put": return env.KV.put(op.key, value(op.value), op.options);
    case "kv.get": return plain(await env.KV.get(op.key, op.options));
    case "kv.getWithMetadata": return plain(await env.KV.getWithMetadata(op.key, op.options));
    case "kv.delete": return env.KV.delete(op.key);
    case "kv.list": return plain(await env.KV.list(op.options));
    case "kv.listPages": {
      const pages = [];
      let cursor;
      for (;;) {
        const page = await env.KV.list({ ...op.options, cursor });
        pages.push(plain(page));
        if (page.list_complete) return pages;
        cursor = page.cursor;
      }
    }
    case "r2.put": return object(await env.BUCKET.put(op.key, value(op.value), op.options));
    case "r2.head": return object(await env.BUCKET.head(op.key));
    case "r2.get": {
      const o = await env.BUCKET.get(op.key, op.options);
      if (o === null) return null;
      return { ...object(o), text: "body" in o ? await o.text() : { $undefined: true } };
    }
    case "r2.delete": return env.BUCKET.delete(op.keys);
    case "r2.list": {
      const r = await env.BUCKET.list(op.options);
      return { ...plain(r), objects: r.objects.map(object) };
    }
    case "r2.listPages": {
      const pages = [];
      let cursor;
      for (;;) {
        const r = await env.BUCKET.list({ ...op.options, cursor });
        pages.push({ ...plain(r), objects: r.objects.map(object) });
        if (!r.truncated) return pages;
        cursor = r.cursor;
      }
    }
    default: throw new Error("unknown op " + op.op);
  }
}
export default {
  async fetch(request, env) {
    const op = await request.json();
    try {
      const result = await run(op, env);
      return Response.json({ ok: result === undefined ? { $undefined: true } : result });
    } catch (e) {
      return Response.json({ error: { name: e.name, message: e.message } });
    }
  },
};
`;

_enableControlEndpoints(); // lets the fake-clock control ops below reach the KV object
const mf = new Miniflare(
  convertV4MiniflareOptions({
    workers: [
      {
        name: "kvr2",
        modules: true,
        script: WORKER,
        compatibilityDate: "2026-10-01",
        kvNamespaces: { KV: "differential-kv" },
        r2Buckets: { BUCKET: "differential-bucket" },
      },
    ],
    cf: false, // offline: no download of Request.cf data
  }),
);

// miniflare's own test seam for its KV clock: a control op sent to the namespace's object
async function control(name, ...args) {
  const ns = await mf._getInternalDurableObjectNamespace("kv", "kv:ns", "KVNamespaceObject");
  const stub = ns.get(ns.idFromName("differential-kv"));
  const response = await stub.fetch("http://placeholder/", {
    cf: { miniflare: { controlOp: { name, args } } },
  });
  await response.text();
}

try {
  await mf.ready;
  await control("enableFakeTimers", plan.kvNow * 1000);
  const results = [];
  for (const op of plan.ops) {
    if (op.op === "advance") {
      await control("advanceFakeTime", op.ms);
      results.push({ ok: { $undefined: true } });
      continue;
    }
    const response = await mf.dispatchFetch("http://kvr2.local/", {
      method: "POST",
      body: JSON.stringify(op),
    });
    results.push(await response.json());
  }
  process.stdout.write(JSON.stringify(results));
} finally {
  await mf.dispose();
}
