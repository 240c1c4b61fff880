"""The scenarios on wrangler's local Workflows engine: miniflare from ``node_modules``, Node 22.

One Node process (``wrangler_worker/driver.mjs``) starts miniflare with the JS Worker of
``wrangler_worker/worker.mjs`` and runs every scenario ``repeat`` times; timings come back as
JSON. Without the npm tooling (``make .build/realruntime.stamp``) every row says why it has
no figure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scenarios import Scenario

REPO = Path(__file__).resolve().parents[1]
NODE = REPO / "node_modules" / "node" / "bin" / "node"
MINIFLARE = REPO / "node_modules" / "miniflare" / "package.json"
DRIVER = Path(__file__).resolve().parent / "wrangler_worker" / "driver.mjs"
PROGRESS = "bench: "  # driver lines passed on to stderr as they come
RUNS_ON_WRANGLER = ("sequential", "rollback", "parallel", "one-by-one", "at-once")


@dataclass
class WranglerRun:
    """The figures of one driver run, per scenario key, or why there are none."""

    engine: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def unavailable() -> str | None:
    """Why wrangler's engine cannot run here, or ``None``."""
    missing = [str(p.relative_to(REPO)) for p in (NODE, MINIFLARE) if not p.exists()]
    if missing:
        return f"npm tooling not installed ({', '.join(missing)}): make .build/realruntime.stamp"
    return None


def _driver_entry(scenario: Scenario) -> dict[str, Any]:
    if scenario.kind in ("one-by-one", "at-once"):
        return {"key": scenario.key, "label": scenario.label, "params": {"scenario": "one-step"},
                "mode": scenario.kind,
                "instances": scenario.n, "per": scenario.n}
    return {"key": scenario.key, "label": scenario.label,
            "params": {"scenario": scenario.kind, "n": scenario.n},
            "per": scenario.n}


def measure(scenarios: list[Scenario], repeat: int, folder: Path, poll_ms: float,
            timeout: float) -> WranglerRun:
    """Run every runnable scenario ``repeat`` times (rounds interleaved) in one miniflare."""
    run = WranglerRun()
    for s in scenarios:
        if s.wrangler_reason is not None:
            run.reasons[s.key] = s.wrangler_reason
    todo = [s for s in scenarios if s.wrangler_reason is None and s.kind in RUNS_ON_WRANGLER]
    if not todo:
        return run
    reason = unavailable()
    if reason is not None:
        run.reasons.update({s.key: reason for s in todo})
        return run
    plan_path, result_path = folder / "wrangler-plan.json", folder / "wrangler-result.json"
    plan_path.write_text(json.dumps({
        "persistDir": str(folder / "miniflare-state"), "repeat": repeat, "pollMs": poll_ms,
        "scenarios": [_driver_entry(s) for s in todo],
    }))
    # Its own process group: on a timeout, workerd (miniflare's child) goes down with it.
    proc = subprocess.Popen([str(NODE), str(DRIVER), str(plan_path), str(result_path)], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
    watchdog.start()
    output: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(PROGRESS):
                print(line.rstrip(), file=sys.stderr, flush=True)
            else:
                output.append(line.rstrip())
        proc.wait()
    finally:
        watchdog.cancel()
    if proc.returncode == -signal.SIGKILL:
        run.reasons.update({s.key: f"the driver ran over {timeout:.0f} s" for s in todo})
        return run
    if proc.returncode != 0 or not result_path.exists():
        cause = next((line for line in output if "Error" in line), output[-1] if output else "no output")
        run.reasons.update({s.key: f"driver failed: {cause.strip()[:200]}" for s in todo})
        return run
    result = json.loads(result_path.read_text())
    run.engine = f"miniflare {result['miniflare']} (workerd {result['workerd']})"
    for s in todo:
        entry = result["results"].get(s.key, {"error": "no result"})
        if "error" in entry:
            run.reasons[s.key] = f"failed: {entry['error'][:200]}"
        else:
            run.samples[s.key] = [float(v) for v in entry["samples"]]
    return run
