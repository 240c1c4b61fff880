// The instance timeline page of `workflows-emulator dev`: workflows, their instances, and one
// instance's timeline (forward steps beside the rollback phase drawn in reverse), with its
// actions and the virtual clock's "advance" button. Everything comes from the JSON API under
// /__workflows/api, polled once a second while the page is open. Hand-written: no build step.
"use strict";

const API = "/__workflows/api";
const POLL_MS = 1000;
const STATUSES = ["queued", "running", "paused", "waitingForPause", "waiting", "complete",
  "errored", "terminated"];
const TERMINAL = new Set(["complete", "errored", "terminated"]);

const state = {
  route: null,      // what the URL's #fragment asks for (see parseRoute)
  gen: 0,           // bumped on every navigation: answers for an older view are dropped
  busy: false,      // a refresh is under way
  seen: {},         // the last JSON drawn per section, so unchanged data is not redrawn
  open: new Set(),  // keys of <details> the user opened, kept open across redraws
};

// -- DOM helpers ----------------------------------------------------------------------------

/** An element: attributes (on* are listeners, style an object), then children (text or nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

/** Redraw the element with ``id`` from ``data`` only when the data changed. */
function draw(id, data, build) {
  const el = $(id);
  const json = JSON.stringify(data);
  if (!el || state.seen[id] === json) return;
  state.seen[id] = json;
  el.replaceChildren(...[build(data)].flat().filter((c) => c !== null && c !== undefined));
}

/** A <details> whose open state survives redraws. */
function details(key, summary, ...body) {
  const el = h("details", {"data-key": key, open: state.open.has(key)}, h("summary", {}, summary),
    ...body);
  el.addEventListener("toggle", () => {
    if (el.open) state.open.add(key); else state.open.delete(key);
  });
  return el;
}

function notify(text, error = false) {
  const el = $("notice");
  el.hidden = false;
  el.className = error ? "notice error" : "notice ok";
  el.setAttribute("role", error ? "alert" : "status");
  el.textContent = text;
}

// -- formatting -----------------------------------------------------------------------------

function fmtTime(ms) {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  ms = Math.max(0, Math.round(ms));
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
  const parts = [];
  let rest = Math.round(s);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)} ${unit}`);
      rest %= size;
    }
  }
  return parts.slice(0, 2).join(" ");
}

/** A duration as the engine stores it (milliseconds or a string such as "10 seconds"). */
function fmtSpec(value) {
  return typeof value === "number" ? fmtDuration(value) : String(value);
}

function fmtError(error) {
  if (!error) return "";
  return error.name ? `${error.name}: ${error.message}` : String(error.message ?? error);
}

function badge(status, extra = "") {
  return h("span", {class: `badge status-${status} ${extra}`.trim()}, status);
}

// -- the API --------------------------------------------------------------------------------

/** One API call: its ``result``, or an Error carrying the API's messages. */
async function api(method, path, body) {
  const init = {method, headers: {}};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(API + path, init);
  let doc;
  try {
    doc = await response.json();
  } catch (_) {
    throw new Error(`${method} ${API}${path}: HTTP ${response.status}, not JSON`);
  }
  if (!doc.success) {
    const messages = (doc.errors || []).map((e) => e.message).join("; ");
    throw new Error(messages || `HTTP ${response.status}`);
  }
  return doc.result;
}

const enc = encodeURIComponent;
const workflowPath = (name) => `/workflows/${enc(name)}`;
const instancePath = (name, id) => `${workflowPath(name)}/instances/${enc(id)}`;
const workflowHref = (name, status) => `#/workflows/${enc(name)}` +
  (status ? `?status=${enc(status)}` : "");
const instanceHref = (name, id) => `#/workflows/${enc(name)}/instances/${enc(id)}`;

// -- routing --------------------------------------------------------------------------------

function parseRoute() {
  const [path, query] = (location.hash.replace(/^#/, "") || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  if (parts[0] === "workflows" && parts.length === 2) {
    return {view: "instances", name: parts[1], status: params.get("status") || ""};
  }
  if (parts[0] === "workflows" && parts[2] === "instances" && parts.length === 4) {
    return {view: "instance", name: parts[1], id: parts[3]};
  }
  return {view: "workflows"};
}

function show() {
  state.route = parseRoute();
  state.gen += 1;
  state.busy = false;
  state.seen = {};
  const route = state.route;
  const crumbs = [h("a", {href: "#/"}, "Workflows")];
  if (route.name) crumbs.push(" / ", h("a", {href: workflowHref(route.name)}, route.name));
  if (route.id) crumbs.push(" / ", h("span", {}, route.id));
  $("crumbs").replaceChildren(...crumbs);
  $("view").replaceChildren(...VIEWS[route.view].skeleton(route));
  refresh();
}

async function refresh() {
  if (state.busy || document.hidden) return;
  state.busy = true;
  const gen = state.gen;
  try {
    await Promise.all([refreshClock(gen), VIEWS[state.route.view].refresh(state.route, gen)]);
    if (gen === state.gen) {
      draw("view-error", "", () => []);
      $("view").dataset.loaded = "true";
    }
  } catch (error) {
    if (gen === state.gen) draw("view-error", error.message, (m) => m);
  } finally {
    if (gen === state.gen) state.busy = false;
  }
}

/** Run an action, say how it went, and redraw at once. */
async function act(label, fn) {
  try {
    const result = await fn();
    notify(typeof result === "string" ? result : `${label}: done`);
  } catch (error) {
    notify(`${label} failed: ${error.message}`, true);
  }
  state.busy = false;
  await refresh();
}

// -- the clock ------------------------------------------------------------------------------

async function refreshClock(gen) {
  const clock = await api("GET", "/time");
  if (gen !== state.gen) return;
  $("clock-kind").textContent = clock.virtual ? "virtual clock" : "real clock";
  $("clock-kind").title = clock.virtual
    ? "time moves only when advanced (this form, or `workflows-emulator time advance 2h`)"
    : "restart with `workflows-emulator dev --virtual-clock` to jump over sleeps and delays";
  $("clock-now").textContent = fmtTime(clock.now);
  $("clock-now").dateTime = new Date(clock.now).toISOString();
  $("clock").dataset.virtual = String(clock.virtual);
  $("advance-form").hidden = !clock.virtual;
}

function advanceTime(event) {
  event.preventDefault();
  const by = $("advance-by").value.trim();
  act(`Advance by ${by}`, async () => {
    const clock = await api("POST", "/time/advance", {by});
    return `Advanced the virtual clock by ${fmtDuration(clock.advanced_ms)}: ` +
      `it is now ${fmtTime(clock.now)}`;
  });
}

// -- view: workflows ------------------------------------------------------------------------

const workflowsView = {
  skeleton: () => [
    h("h1", {}, "Workflows"),
    h("p", {id: "view-error", class: "error"}),
    h("table", {id: "workflows", class: "list"},
      h("thead", {}, h("tr", {}, h("th", {}, "Workflow"), h("th", {}, "Class"),
        h("th", {}, "Binding"), h("th", {}, "Instances"))),
      h("tbody", {id: "workflow-rows"})),
  ],
  async refresh(route, gen) {
    const rows = await api("GET", "/workflows");
    if (gen !== state.gen) return;
    draw("workflow-rows", rows, (list) => list.length ? list.map((wf) => h("tr",
      {"data-workflow": wf.name},
      h("td", {}, h("a", {href: workflowHref(wf.name)}, wf.name)),
      h("td", {}, h("code", {}, wf.class_name)),
      h("td", {}, h("code", {}, wf.binding)),
      h("td", {class: "counts"}, countBadges(wf.name, wf.instances)))) :
      h("tr", {}, h("td", {colspan: 4, class: "muted"}, "This project defines no workflows.")));
  },
};

function countBadges(name, counts) {
  const entries = STATUSES.filter((s) => counts[s]);
  if (!entries.length) return h("span", {class: "muted"}, "none yet");
  return entries.map((s) => h("a", {href: workflowHref(name, s), class: `badge status-${s}`},
    `${counts[s]} ${s}`));
}

// -- view: one workflow's instances ---------------------------------------------------------

const instancesView = {
  skeleton: (route) => [
    h("h1", {}, "Instances of ", h("code", {}, route.name)),
    h("p", {id: "view-error", class: "error"}),
    h("nav", {id: "status-filter", class: "filters", "aria-label": "Filter by status"}),
    h("table", {id: "instances", class: "list"},
      h("thead", {}, h("tr", {}, h("th", {}, "Instance"), h("th", {}, "Status"),
        h("th", {}, "Created"), h("th", {}, "Last change"))),
      h("tbody", {id: "instance-rows"})),
    details("create", "Create an instance",
      h("form", {id: "create-form", class: "stack", onsubmit: (e) => createInstance(e, route)},
        h("label", {}, "Id (optional) ", h("input", {id: "create-id", name: "id"})),
        h("label", {}, "Params (JSON) ",
          h("textarea", {id: "create-params", name: "params", rows: 3}, "{}")),
        h("button", {id: "create", type: "submit"}, "Create instance"))),
  ],
  async refresh(route, gen) {
    const query = route.status ? `?status=${enc(route.status)}` : "";
    const [wf, rows] = await Promise.all([api("GET", workflowPath(route.name)),
      api("GET", `${workflowPath(route.name)}/instances${query}`)]);
    if (gen !== state.gen) return;
    draw("status-filter", {counts: wf.instances, status: route.status}, ({counts}) => {
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      return [["", `all ${total}`], ...STATUSES.map((s) => [s, `${s} ${counts[s] || 0}`])]
        .map(([s, text]) => h("a", {href: workflowHref(route.name, s), "data-status": s || "all",
          class: `filter status-${s || "all"}`,
          "aria-current": s === route.status ? "true" : null}, text));
    });
    draw("instance-rows", rows, (list) => list.length ? [...list].reverse().map((row) => h("tr",
      {"data-instance": row.id, "data-status": row.status},
      h("td", {}, h("a", {href: instanceHref(route.name, row.id)}, row.id)),
      h("td", {}, badge(row.status)),
      h("td", {}, fmtTime(row.created)),
      h("td", {}, fmtTime(row.modified)))) :
      h("tr", {}, h("td", {colspan: 4, class: "muted"},
        route.status ? `No ${route.status} instances.` : "No instances yet.")));
  },
};

function createInstance(event, route) {
  event.preventDefault();
  let params;
  try {
    params = JSON.parse($("create-params").value || "{}");
  } catch (error) {
    notify(`Params are not JSON: ${error.message}`, true);
    return;
  }
  const id = $("create-id").value.trim();
  act("Create", async () => {
    const created = await api("POST", `${workflowPath(route.name)}/instances`,
      id ? {id, params} : {params});
    location.hash = instanceHref(route.name, created.id);
    return `Created ${created.id}: ${created.status}`;
  });
}

// -- view: one instance ---------------------------------------------------------------------

const ACTIONS = [
  ["pause", "Pause", {action: "pause"}],
  ["resume", "Resume", {action: "resume"}],
  ["terminate", "Terminate", {action: "terminate"}],
  ["terminate-rollback", "Terminate with rollback", {action: "terminate", rollback: true}],
  ["restart", "Restart", {action: "restart"}],
];

const instanceView = {
  skeleton: (route) => [
    h("p", {id: "view-error", class: "error"}),
    h("section", {id: "summary", class: "summary"}),
    h("section", {id: "actions", class: "actions", "aria-label": "Actions"},
      ...ACTIONS.map(([key, label, body]) => h("button", {id: `act-${key}`, type: "button",
        class: key.startsWith("terminate") ? "danger" : "",
        onclick: () => act(label, async () => {
          const r = await api("PATCH", instancePath(route.name, route.id), body);
          return `${label}: the instance is now ${r.status}`;
        })}, label)),
      h("form", {id: "event-form", class: "event-form",
        onsubmit: (e) => sendEvent(e, route)},
        h("label", {}, "Event type ", h("input", {id: "event-type", name: "type",
          required: true, placeholder: "approved"})),
        h("label", {}, "Payload (JSON) ", h("textarea", {id: "event-payload", name: "payload",
          rows: 1}, "{}")),
        h("button", {id: "send-event", type: "submit"}, "Send event"))),
    h("section", {id: "rollback-trigger", class: "trigger", hidden: true}),
    h("section", {id: "timeline", class: "timeline", "aria-label": "Timeline"}),
    h("section", {id: "log"}),
  ],
  async refresh(route, gen) {
    const doc = await api("GET", `/timeline${instancePath(route.name, route.id)}`);
    if (gen !== state.gen) return;
    $("view").dataset.status = doc.status;
    draw("summary", doc, drawSummary);
    draw("rollback-trigger", doc.rollback_phase, drawTrigger);
    draw("timeline", doc, drawTimeline);
    draw("log", doc.events, (events) => details("events", `Instance log (${events.length})`,
      h("table", {class: "list log"}, events.map((e) => h("tr", {},
        h("td", {}, fmtTime(e.timestamp)), h("td", {}, h("code", {}, e.event)),
        h("td", {}, e.data ? JSON.stringify(e.data) : ""))))));
  },
};

function sendEvent(event, route) {
  event.preventDefault();
  const type = $("event-type").value.trim();
  let payload;
  try {
    payload = JSON.parse($("event-payload").value || "null");
  } catch (error) {
    notify(`The payload is not JSON: ${error.message}`, true);
    return;
  }
  act(`Send event ${type}`, async () => {
    const r = await api("POST", `${instancePath(route.name, route.id)}/events/${enc(type)}`,
      payload);
    return `Sent event "${type}": the instance is now ${r.status}`;
  });
}

function drawSummary(doc) {
  const now = doc.clock.now;
  const end = doc.end ?? (TERMINAL.has(doc.status) ? null : now);
  return [
    h("h1", {}, h("code", {id: "instance-id"}, doc.id), " ",
      h("span", {id: "instance-status", class: `badge big status-${doc.status}`}, doc.status)),
    h("dl", {class: "facts"},
      h("dt", {}, "Workflow"), h("dd", {}, h("a", {href: workflowHref(doc.workflow)},
        doc.workflow)),
      h("dt", {}, "Queued"), h("dd", {}, fmtTime(doc.queued)),
      h("dt", {}, "Started"), h("dd", {}, fmtTime(doc.start)),
      h("dt", {}, "Ended"), h("dd", {}, fmtTime(doc.end)),
      h("dt", {}, "Duration"), h("dd", {}, doc.start ? fmtDuration((end ?? now) - doc.start) :
        "—")),
    doc.error ? h("p", {id: "instance-error", class: "error box"}, h("strong", {}, "Error "),
      fmtError(doc.error)) : null,
    doc.output !== null && doc.output !== undefined ?
      details("output", "Output", h("pre", {id: "instance-output"},
        JSON.stringify(doc.output, null, 2))) : null,
  ];
}

function drawTrigger(phase) {
  const el = $("rollback-trigger");
  el.hidden = !phase;
  if (!phase) return [];
  const done = phase.completed ?? phase.steps.filter((s) => s.state === "success").length;
  return [
    h("h2", {}, "Rollback ", h("span", {id: "rollback-outcome",
      class: `badge outcome-${phase.outcome}`}, phase.outcome),
    h("span", {class: "muted"}, ` ${done} of ${phase.total ?? phase.steps.length} handlers`)),
    phase.trigger ? h("p", {id: "trigger-error"}, "Triggered by ",
      h("strong", {}, phase.trigger.name ?? "Error"), ": ", phase.trigger.message ?? "") :
      h("p", {id: "trigger-error"}, "Triggered by terminate with rollback"),
    phase.error ? h("p", {id: "rollback-error", class: "error"}, "Rollback failed: ",
      fmtError(phase.error)) : null,
  ];
}

// -- the timeline ---------------------------------------------------------------------------

/** The span drawn: from the instance's start to its end, or to now and the timers pending. */
function timeSpan(doc) {
  const now = doc.clock.now;
  const steps = [...doc.steps, ...(doc.rollback_phase?.steps ?? [])];
  const starts = steps.map((s) => s.start).filter((t) => t !== null);
  const t0 = doc.queued ?? doc.start ?? (starts.length ? Math.min(...starts) : now);
  const ends = steps.flatMap((s) => [s.end, s.wake_at, s.retry_at]).filter((t) => t !== null);
  const live = TERMINAL.has(doc.status) ? [] : [now];
  const t1 = Math.max(doc.end ?? t0, ...ends, ...live, t0);
  return {t0, t1, now, width: Math.max(t1 - t0, 1)};
}

/** A bar segment from ``a`` to ``b`` (epoch ms) on the span, with a class and a tooltip. */
function segment(span, a, b, cls, title) {
  const left = ((a - span.t0) / span.width) * 100;
  const width = Math.max(((b - a) / span.width) * 100, 0);
  return h("span", {class: `seg ${cls}`, title,
    style: {left: `min(${left}%, calc(100% - 3px))`, width: `max(${width}%, 3px)`}});
}

function track(span, segments) {
  return h("div", {class: "track"}, segments);
}

function stepSegments(step, span) {
  const end = step.end ?? span.now;
  if (step.type === "sleep" || step.type === "wait") {
    const parts = [segment(span, step.start, end, `${step.type} state-${step.state}`,
      `${step.type} ${fmtDuration(end - step.start)}`)];
    if (step.end === null && step.wake_at) {
      parts.push(segment(span, end, step.wake_at, "pending",
        `${step.type === "sleep" ? "wakes" : "times out"} at ${fmtTime(step.wake_at)}`));
    }
    return parts;
  }
  const parts = [];
  step.attempts.forEach((attempt, i) => {
    const aEnd = attempt.end ?? span.now;
    parts.push(segment(span, attempt.start, aEnd, `seg-attempt state-${attempt.state}`,
      `attempt ${attempt.attempt}: ${attempt.state}, ${fmtDuration(aEnd - attempt.start)}`));
    const next = step.attempts[i + 1];
    const resume = next ? next.start : (attempt.end !== null && step.retry_at) || null;
    if (attempt.end !== null && resume !== null && resume > attempt.end) {
      parts.push(segment(span, attempt.end, next ? resume : Math.max(resume, span.now),
        next ? "retry-delay" : "retry-delay pending",
        `retry delay ${fmtDuration(resume - attempt.end)}`));
    }
  });
  return parts;
}

function attemptList(step, now) {
  if (!step.attempts.length) return null;
  return h("ol", {class: "attempts"}, step.attempts.map((a) => h("li",
    {class: `attempt state-${a.state}`, "data-attempt": a.attempt, "data-state": a.state},
    h("span", {class: "attempt-no"}, `attempt ${a.attempt}`), " ",
    h("span", {class: "attempt-state"}, a.state), " · ",
    fmtDuration((a.end ?? now) - a.start),
    a.error ? h("span", {class: "attempt-error"}, ` · ${fmtError(a.error)}`) : null,
    a.retry_delay_ms !== null && a.retry_delay_ms !== undefined ?
      h("span", {class: "retry"}, ` · retried after ${fmtDuration(a.retry_delay_ms)}`) : null)));
}

function stepDetail(step, span) {
  const cfg = step.config || {};
  if (step.type === "sleep") {
    if (step.end !== null) return `slept ${fmtDuration(step.end - step.start)}`;
    return step.wake_at ? `sleeping until ${fmtTime(step.wake_at)} ` +
      `(${fmtDuration(step.wake_at - span.now)} left)` : "sleeping";
  }
  if (step.type === "wait") {
    const what = `waits for event "${cfg.type ?? "?"}"` +
      (cfg.timeout !== undefined ? `, timeout ${fmtSpec(cfg.timeout)}` : "");
    if (step.state === "success") return `${what}: received after ` +
      fmtDuration(step.end - step.start);
    if (step.state === "failure") return `${what}: timed out`;
    return step.wake_at ? `${what}: waiting, times out at ${fmtTime(step.wake_at)}` : what;
  }
  const retries = cfg.retries;
  const policy = retries ? `retries: limit ${retries.limit}, delay ${fmtSpec(retries.delay)}` +
    (retries.backoff ? `, ${retries.backoff}` : "") : "";
  const pending = step.retry_at && step.state === "running" ?
    ` · next attempt at ${fmtTime(step.retry_at)}` : "";
  return policy + (cfg.timeout ? ` · timeout ${fmtSpec(cfg.timeout)}` : "") + pending;
}

const KIND = {do: "step.do", sleep: "sleep", wait: "wait for event", rollback: "rollback"};

function stepCard(step, span, label) {
  const duration = step.start !== null ? fmtDuration((step.end ?? span.now) - step.start) : "—";
  return h("article", {class: `step type-${step.type} state-${step.state}`, "data-step": label,
    "data-state": step.state},
  h("header", {},
    h("span", {class: "kind"}, KIND[step.type] ?? step.type), " ",
    h("strong", {class: "step-name"}, label), " ",
    h("span", {class: `badge state-${step.state}`}, step.state), " ",
    h("span", {class: "duration"}, duration),
    step.has_rollback ? h("span", {class: "has-rollback", title: "has a rollback handler"},
      " ↩") : null),
  track(span, stepSegments(step, span)),
  h("p", {class: "detail"}, stepDetail(step, span)),
  attemptList(step, span.now),
  step.error ? h("p", {class: "error step-error"}, fmtError(step.error)) : null,
  step.output !== null && step.output !== undefined && step.type === "do" ?
    details(`out:${label}`, "Output", h("pre", {}, JSON.stringify(step.output, null, 2))) :
    null);
}

function handlerCard(handler, span, total) {
  const duration = handler.start !== null ?
    fmtDuration((handler.end ?? span.now) - handler.start) : "—";
  return h("article", {class: `handler state-${handler.state}`, "data-step": handler.step,
    "data-order": handler.order, "data-state": handler.state},
  h("header", {},
    h("span", {class: "order", title: `ran ${handler.order} of ${total}`},
      `↩ ${handler.order}`), " ",
    h("strong", {class: "step-name"}, handler.step), " ",
    h("span", {class: `badge state-${handler.state} outcome`}, handler.state), " ",
    h("span", {class: "duration"}, duration)),
  track(span, stepSegments(handler, span)),
  attemptList(handler, span.now),
  handler.error ? h("p", {class: "error step-error"}, fmtError(handler.error)) : null);
}

/** A step still "running" in an ended instance was cut short: no timer is pending for it. */
function settled(step, doc) {
  if (!TERMINAL.has(doc.status) || step.state !== "running") return step;
  return {...step, state: "interrupted", retry_at: null, wake_at: null};
}

function drawTimeline(raw) {
  const doc = {...raw, steps: raw.steps.map((s) => settled(s, raw)),
    rollback_phase: raw.rollback_phase && {...raw.rollback_phase,
      steps: raw.rollback_phase.steps.map((s) => settled(s, raw))}};
  const span = timeSpan(doc);
  const phase = doc.rollback_phase;
  const handlers = new Map((phase?.steps ?? []).map((s) => [s.step, s]));
  const total = phase?.total ?? handlers.size;
  const rows = doc.steps.map((step) => {
    const label = `${step.name}-${step.count}`;
    const handler = handlers.get(label);
    handlers.delete(label);
    return h("div", {class: "row"},
      h("div", {class: "cell forward"}, stepCard(step, span, label)),
      h("div", {class: "cell backward"}, handler ? handlerCard(handler, span, total) : null));
  });
  for (const handler of handlers.values()) {  // a handler whose step is not (yet) listed
    rows.push(h("div", {class: "row"}, h("div", {class: "cell forward"}),
      h("div", {class: "cell backward"}, handlerCard(handler, span, total))));
  }
  return [
    h("div", {class: "axis"}, h("span", {}, fmtTime(span.t0)),
      h("span", {}, `${fmtDuration(span.t1 - span.t0)} shown`), h("span", {}, fmtTime(span.t1))),
    h("div", {class: `grid ${phase ? "with-rollback" : "no-rollback"}`},
      h("div", {class: "row head"},
        h("h2", {class: "cell forward"}, "Steps ↓"),
        h("h2", {class: "cell backward"}, phase ? "Rollback ↑ (handlers run in reverse)" :
          "No rollback phase")),
      rows.length ? rows : h("p", {class: "muted"}, "No steps yet.")),
  ];
}

// -- start ----------------------------------------------------------------------------------

const VIEWS = {workflows: workflowsView, instances: instancesView, instance: instanceView};

window.addEventListener("hashchange", show);
document.addEventListener("visibilitychange", refresh);
document.addEventListener("DOMContentLoaded", () => {
  $("advance-form").addEventListener("submit", advanceTime);
  show();
  setInterval(refresh, POLL_MS);
});
