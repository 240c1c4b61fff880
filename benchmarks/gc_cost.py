"""What the cyclic garbage collector costs per step, and what a run keeps alive for it to walk.

Usage: ``python -m benchmarks.gc_cost [--sizes 1000,25000] [--scenarios sequential,rollback]``

Wall-clock figures on a shared VM move by a quarter from one run to the next; the time spent
inside the collector (``gc.callbacks``) and the number of GC-tracked objects an instance keeps
move far less, so they show a change in what the engine allocates where ``make bench``
cannot. Each row is one instance in a fresh interpreter (the collector's schedule depends on
everything already on the heap), on a new state directory, with the virtual clock:

- ``wall``: microseconds per step, the whole run (for a rollback run, the forward steps and
  the handlers together, per step);
- ``gc``: microseconds per step spent in collections during the run;
- ``collections``: how many collections of generations 0 / 1 / 2 ran;
- ``kept``: GC-tracked objects still alive per step once the instance has finished (the
  emulator still open), counted with ``gc.get_objects()`` outside the timed run.

No figure is checked against anything: like ``make bench``, this is for reading.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .scenarios import parse_sizes

SCENARIOS = ("sequential", "rollback")


class _GcClock:
    """Adds up the time spent in collections while `on` (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.on:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


async def _one(state: Path, scenario: str, n: int) -> dict[str, Any]:
    from workflows_emulator import Emulator

    from .emulator_scenarios import BenchWorkflow

    clock = _GcClock()
    gc.callbacks.append(clock)
    try:
        async with Emulator(state, step_limit=max(n, 10_000)) as emu:
            wf = emu.workflow(BenchWorkflow, name="bench", env={})
            gc.collect()
            before = len(gc.get_objects())
            clock.on = True
            started = time.perf_counter()
            status = await (await wf.create(params={"scenario": scenario, "n": n})).wait()
            wall = time.perf_counter() - started
            clock.on = False
            wanted = "errored" if scenario == "rollback" else "complete"
            if status["status"] != wanted:
                raise RuntimeError(f"the {scenario} instance ended {status}, expected {wanted}")
            gc.collect()
            kept = len(gc.get_objects()) - before
    finally:
        gc.callbacks.remove(clock)
    return {"scenario": scenario, "n": n, "wall_us": wall / n * 1e6,
            "gc_us": clock.seconds / n * 1e6, "collections": clock.collections,
            "kept_per_step": kept / n}


def _measure_in_child(scenario: str, n: int, tmp: str | None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gc_cost", "--child", scenario, str(n),
         *(["--tmp", tmp] if tmp else [])],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"gc_cost: the {scenario} run of {n} steps failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _scenarios(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or repr(text)}: choose from {', '.join(SCENARIOS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gc_cost",
                                description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sizes", type=parse_sizes, default=(1_000, 25_000), metavar="N,N,...",
                   help="steps per instance (default 1000,25000)")
    p.add_argument("--scenarios", type=_scenarios, default=list(SCENARIOS), metavar="NAME,...",
                   help="sequential, rollback or both (default both)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    p.add_argument("--tmp", metavar="DIR", help="where state goes (default: the system temp folder)")
    p.add_argument("--child", nargs=2, metavar=("SCENARIO", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        scenario, n = args.child[0], int(args.child[1])
        with tempfile.TemporaryDirectory(prefix="workflows-gc-cost-", dir=args.tmp) as state:
            print(json.dumps(asyncio.run(_one(Path(state), scenario, n))))
        return 0

    rows = [_measure_in_child(scenario, n, args.tmp)
            for scenario in args.scenarios for n in args.sizes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'scenario':<12} {'N':>8} {'wall us/step':>13} {'gc us/step':>11} "
          f"{'collections 0/1/2':>18} {'kept/step':>10}")
    for row in rows:
        counts = "/".join(str(c) for c in row["collections"])
        print(f"{row['scenario']:<12} {row['n']:>8,} {row['wall_us']:>13.1f} {row['gc_us']:>11.2f} "
              f"{counts:>18} {row['kept_per_step']:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
