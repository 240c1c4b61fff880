"""Scale figures of the emulator: ``describe --json`` of a long instance, RSS of many finished ones.

Both run in fresh subprocesses, as a user would meet them: the CLI reads the state directory
left by a finished run; the memory probe (`benchmarks.memory_probe`) is its own interpreter.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .emulator_scenarios import build_long_instance

REPO = Path(__file__).resolve().parents[1]
KIB = 1024
MB = 1_000_000


@dataclass(frozen=True)
class ProcessCost:
    """What one child process cost: wall seconds (start-up included) and peak RSS in MB."""

    seconds: float
    peak_mb: float


def _run_child(module_argv: list[str], cwd: Path, stdout_path: Path) -> ProcessCost:
    """Run ``python -m`` ``module_argv`` to its end: its wall time and its own peak RSS
    (reported by `benchmarks.peak_rss`, not the parent's ``wait4``: see there why)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    peak_file = stdout_path.with_suffix(".peak")
    argv = [sys.executable, "-m", "benchmarks.peak_rss", str(peak_file), *module_argv]
    with stdout_path.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.PIPE, env=env)
        _stdout, err = proc.communicate()
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        text = err.decode("utf-8", "replace")
        raise RuntimeError(f"{' '.join(module_argv[:5])} ... exited {proc.returncode}: "
                           f"{text[-500:]}")
    return ProcessCost(seconds, int(peak_file.read_text()) * KIB / MB)


# What the CLI needs to find workflow "bench"; describe never imports `main`.
PROJECT = """name = "bench"
main = "bench.py"
compatibility_date = "2026-10-01"
compatibility_flags = ["python_workers", "python_workflows"]

[[workflows]]
name = "bench"
binding = "BENCH"
class_name = "BenchWorkflow"
"""


def prepare_describe(folder: Path, steps: int) -> Path:
    """A project folder whose state holds one finished ``steps``-step instance (``bench``/``long``)."""
    project = folder / f"describe-{steps}"
    project.mkdir()
    (project / "wrangler.toml").write_text(PROJECT)
    (project / "bench.py").write_text("# never imported: describe reads the state as it is\n")
    asyncio.run(build_long_instance(project / "state", steps))
    return project / "state"


def describe_cost(state: Path, steps: int) -> ProcessCost:
    """``workflows-emulator workflows instances describe bench long --json`` on ``state``."""
    out = state.parent / "describe.json"
    argv = ["workflows_emulator", "workflows", "instances", "describe",
            "bench", "long", "--json", "--persist-to", str(state),
            "--config", str(state.parent / "wrangler.toml")]
    cost = _run_child(argv, state.parent, out)
    shown = json.loads(out.read_text())
    if len(shown.get("steps", ())) != steps:
        raise RuntimeError(f"describe showed {len(shown.get('steps', ()))} steps, not {steps}")
    return cost


def finished_instances_rss_mb(folder: Path, instances: int) -> float:
    """RSS (MB) of a fresh process holding an open emulator with ``instances`` finished ones."""
    state = folder / f"memory-{instances}"
    out = folder / f"memory-{instances}.json"
    argv = ["benchmarks.memory_probe", str(state), str(instances)]
    _run_child(argv, REPO, out)
    rss: float = json.loads(out.read_text())["rss_mb"]
    return rss
