"""Runs a JS Worker project's workflow on wrangler's local Workflows engine and traces it.

The engine is miniflare's (what ``wrangler dev`` runs), from the ``node_modules`` of the
JS project or of a folder above it, or of the current folder, under Node 22
(``node_modules/node/bin/node``, else ``node`` on ``PATH``); nothing is downloaded. One Node
process (``js_driver.mjs``) starts miniflare with the project's modules, runs every
`RunSpec` given, and writes the engine's ``subscribe()`` events (the whole log, read once
the instance has ended), the final ``status()`` and what each rollback handler received;
`run_js` turns each into a trace. Faults go through the workflow binding's instance
modifier (``unsafeGetInstanceModifier``, what ``cloudflare:test``'s introspection uses):
``mockStepError``, ``forceStepTimeout``, ``forceEventTimeout``, and ``disableSleeps`` /
``disableRetryDelays`` unless ``keep_delays``. Events are sent when the log shows the
instance waiting for their type; the terminate-with-rollback when it shows the named step
starting (after the last event was sent).

The project must be plain JS modules (``.js`` / ``.mjs``: miniflare does not compile
TypeScript nor bundle npm packages) with a wrangler file naming ``main`` and
``[[workflows]]`` of its own classes; ``vars``, ``kv_namespaces`` and ``d1_databases``
are bound as wrangler binds them locally.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5

from .trace import Trace, build_trace, from_subscribe_events, handler_view

DRIVER = Path(__file__).resolve().parent / "js_driver.mjs"
CONFIG_NAMES = ("wrangler.jsonc", "wrangler.json", "wrangler.toml")
INSTALL_HINT = ("install the npm tooling: `npm i -D wrangler` in the JS project (in this "
                "repository: `make .build/realruntime.stamp`)")
DEFAULT_DATE = "2026-10-01"


class PortingError(Exception):
    """A project, option or tool problem that stops a comparison; the message says what to do."""


@dataclass(frozen=True)
class Fault:
    """An injected fault: ``kind`` is fail, timeout or event-timeout (see `parse_fault`)."""

    step: str
    kind: str
    index: int = 1
    times: int | None = None  # None: every attempt

    @property
    def message(self) -> str:
        """The injected error's message (the same on both sides)."""
        return f"injected fault in {self.step}"


@dataclass(frozen=True)
class RunSpec:
    """One instance to run: params, faults, events to deliver, when to terminate."""

    workflow: str
    instance_id: str = "compare-1"
    params: Any = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    events: tuple[tuple[str, Any], ...] = ()  # (type, payload), delivered in this order
    terminate_at: str | None = None  # terminate with rollback once this step has started
    keep_delays: bool = False  # keep sleeps and retry delays (real time on the JS side)
    timeout: float = 60.0  # real seconds for one instance


@dataclass
class SideResult:
    """A trace, or why there is none."""

    trace: Trace | None = None
    error: str | None = None
    engine: str = ""


@dataclass(frozen=True)
class JsProject:
    """The parts of a JS project's wrangler file the driver needs."""

    root: Path
    main: Path
    name: str
    compatibility_date: str
    compatibility_flags: tuple[str, ...]
    workflows: dict[str, dict[str, str]]  # binding -> {name, className}
    vars: dict[str, Any]
    kv: dict[str, str]
    d1: dict[str, str]

    def binding_of(self, workflow: str) -> str:
        """The binding of workflow ``workflow``, or `PortingError` naming the known ones."""
        for binding, wf in self.workflows.items():
            if wf["name"] == workflow:
                return binding
        known = ", ".join(w["name"] for w in self.workflows.values()) or "none"
        raise PortingError(f'{self.root}: no workflow named "{workflow}" in the wrangler '
                           f"file's workflows (known: {known}); pass one of them to --js-workflow")


def load_js_project(path: str | Path) -> JsProject:
    """Read the wrangler file of the JS project at ``path`` (its folder or the file)."""
    cfg = _find_config(Path(path))
    text = cfg.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if cfg.suffix == ".toml" else json5.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise PortingError(f"{cfg}: cannot be parsed ({exc}); fix its syntax") from exc
    if not isinstance(data, dict):
        raise PortingError(f"{cfg}: expected a table/object at the top")
    root = cfg.parent.resolve()
    main = data.get("main")
    if not isinstance(main, str) or not (root / main).is_file():
        raise PortingError(f'{cfg}: "main" must name the Worker\'s entry module (got {main!r})')
    if not main.endswith((".js", ".mjs")):
        raise PortingError(f'{cfg}: "main" is {main}; compare runs plain JS modules (.js or '
                           ".mjs): build TypeScript to JS first (e.g. `wrangler deploy "
                           "--dry-run --outdir dist`) and point main at the result")
    workflows = {}
    for wf in data.get("workflows") or []:
        if wf.get("script_name"):
            raise PortingError(f'{cfg}: workflow "{wf.get("name")}" lives in another Worker '
                               "(script_name); compare the project that defines its class")
        workflows[str(wf["binding"])] = {"name": str(wf["name"]),
                                         "className": str(wf["class_name"])}
    return JsProject(
        root=root, main=Path(main), name=str(data.get("name") or "worker"),
        compatibility_date=str(data.get("compatibility_date") or DEFAULT_DATE),
        compatibility_flags=tuple(data.get("compatibility_flags") or ()),
        workflows=workflows, vars=dict(data.get("vars") or {}),
        kv={str(k["binding"]): str(k.get("id") or k["binding"])
            for k in data.get("kv_namespaces") or []},
        d1={str(d["binding"]): str(d.get("database_id") or d.get("database_name")
                                   or d["binding"])
            for d in data.get("d1_databases") or []},
    )


def _find_config(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for name in CONFIG_NAMES:
            if (path / name).is_file():
                return path / name
        raise PortingError(f"{path}: no wrangler.jsonc, wrangler.json or wrangler.toml here; "
                           "pass the JS project's folder to --js")
    raise PortingError(f"{path}: no such file or folder; pass the JS project's folder to --js")


def find_tooling(project_root: Path) -> tuple[Path, Path]:
    """``(node, node_modules)``: miniflare from the nearest ``node_modules`` and Node 22.

    Raises:
        PortingError: no ``node_modules/miniflare`` above the project or the current
            folder, or no Node; the message says how to install them.
    """
    for folder in [project_root, *project_root.parents, Path.cwd(), *Path.cwd().parents]:
        modules = folder / "node_modules"
        if (modules / "miniflare" / "package.json").is_file():
            break
    else:
        raise PortingError(f"wrangler's local engine (miniflare) was not found in a "
                           f"node_modules above {project_root} or the current folder; "
                           + INSTALL_HINT)
    local = modules / "node" / "bin" / "node"
    node = local if local.is_file() else shutil.which("node")
    if node is None:
        raise PortingError(f"no Node.js found ({local} nor `node` on PATH); " + INSTALL_HINT)
    return Path(node), modules


def _modules(root: Path) -> list[str]:
    """Every JS module of the project (its own, not node_modules or hidden folders)."""
    found = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part == "node_modules" or part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix in (".js", ".mjs"):
            found.append(str(rel))
    return found


def _driver_run(project: JsProject, spec: RunSpec) -> dict[str, Any]:
    return {
        "binding": project.binding_of(spec.workflow), "id": spec.instance_id,
        "params": spec.params,
        "faults": [{"step": f.step, "index": f.index, "kind": f.kind, "times": f.times,
                    "message": f.message} for f in spec.faults],
        "events": [{"type": t, "payload": p} for t, p in spec.events],
        "terminateAt": spec.terminate_at, "keepDelays": spec.keep_delays,
    }


def run_js(project_path: str | Path, specs: list[RunSpec]) -> list[SideResult]:
    """Run each of ``specs`` on the JS project, in one Node process; a trace per run."""
    project = load_js_project(project_path)
    runs = [_driver_run(project, s) for s in specs]  # unknown workflow names fail here
    node, modules = find_tooling(project.root)
    with tempfile.TemporaryDirectory(prefix="workflows-compare-js-") as scratch:
        folder = Path(scratch)
        plan = {
            "nodeModules": str(modules), "root": str(project.root), "main": str(project.main),
            "modules": _modules(project.root), "name": project.name,
            "compatibilityDate": project.compatibility_date,
            "compatibilityFlags": list(project.compatibility_flags),
            "workflows": project.workflows, "vars": project.vars,
            "kvNamespaces": project.kv, "d1Databases": project.d1,
            "persistDir": str(folder / "state"),
            "timeoutMs": int(max(s.timeout for s in specs) * 1000), "runs": runs,
        }
        (folder / "plan.json").write_text(json.dumps(plan))
        output = _run_driver(node, folder, sum(s.timeout for s in specs) + 60)
        result_path = folder / "result.json"
        if not result_path.is_file():
            tail = "\n".join(output.splitlines()[-15:])
            raise PortingError(f"wrangler's local engine failed to run {project.root}:\n{tail}")
        result = json.loads(result_path.read_text())
    engine = f"miniflare {result['miniflare']} (workerd {result['workerd']})"
    return [_side(r, engine) for r in result["results"]]


def _run_driver(node: Path, folder: Path, timeout: float) -> str:
    # Its own process group: on a timeout, workerd (miniflare's child) goes down with it.
    proc = subprocess.Popen([str(node), str(DRIVER), "plan.json", "result.json"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "NO_COLOR": "1"})
    watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
    watchdog.start()
    try:
        output, _ = proc.communicate()
    finally:
        watchdog.cancel()
    if proc.returncode == -signal.SIGKILL:
        raise PortingError(f"wrangler's local engine ran over {timeout:.0f} s and was stopped")
    return output


def _side(result: dict[str, Any], engine: str) -> SideResult:
    if "error" in result:
        return SideResult(error=f"JS side: {result['error']}", engine=engine)
    views = [handler_view(v["stepName"], v["output"].get("value"), v["error"])
             for v in result["handlers"]]
    trace = build_trace(from_subscribe_events(result["events"]), result["status"], views)
    return SideResult(trace=trace, engine=engine)
