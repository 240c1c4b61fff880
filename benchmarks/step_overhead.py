"""Per-step cost of the emulator next to the cost of raw SQLite commits, measured in one run.

Run: .venv/bin/python benchmarks/step_overhead.py [--steps 1000] [--repeat 7]

Reports medians (µs per step) for: a 1,000-step workflow, a 1,000-handler rollback (timed
from the failure to the end of the phase), and raw SQLite commits (WAL + synchronous=NORMAL,
1 and 2 commits of a small row) on the same disk; and each engine cost as a ratio to the
2-commit floor measured in the same run, the figure to compare across machines and commits.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from workflows_emulator import Emulator
from workflows_saga import WorkflowEntrypoint


def raw_sqlite_us(directory: Path, n: int, commits_per_step: int) -> float:
    conn = sqlite3.connect(directory / f"raw-{commits_per_step}.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    row = "x" * 200
    start = time.perf_counter()
    for _step in range(n):
        for _commit in range(commits_per_step):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (v) VALUES (?)", (row,))
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / n * 1e6


FAILED_AT: list[float] = []


def make_workflows(n: int) -> tuple[type, type]:
    class Forward(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            for i in range(n):
                await step.do("s", lambda i=i: i)
            return n

    async def undo(rb: Any) -> None:
        return None

    class Rollback(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            for i in range(n):
                await step.do("s", lambda i=i: i, rollback=undo)
            FAILED_AT.append(time.perf_counter())  # the rollback phase starts here
            raise RuntimeError("roll everything back")

    return Forward, Rollback


async def engine_us(directory: Path, n: int) -> tuple[float, float]:
    forward, rollback = make_workflows(n)
    async with Emulator(directory) as emu:
        wf_f = emu.workflow(forward, name="forward")
        start = time.perf_counter()
        inst = await wf_f.create()
        status = await inst.wait()
        forward_us = (time.perf_counter() - start) / n * 1e6
        assert status["status"] == "complete", status

        wf_r = emu.workflow(rollback, name="rollback")
        FAILED_AT.clear()
        inst = await wf_r.create()
        status = await inst.wait()
        rollback_us = (time.perf_counter() - FAILED_AT[0]) / n * 1e6
        assert status["rollback"] == {"outcome": "complete", "error": None}, status
    return forward_us, rollback_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, list[float]] = {k: [] for k in ("raw1", "raw2", "forward", "rollback")}
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp:
            d = Path(tmp)
            results["raw1"].append(raw_sqlite_us(d, args.steps, 1))
            results["raw2"].append(raw_sqlite_us(d, args.steps, 2))
            f, rb = asyncio.run(engine_us(d / f"state-{r}", args.steps))
            results["forward"].append(f)
            results["rollback"].append(rb)
    med = {k: statistics.median(v) for k, v in results.items()}
    # Each run's engine cost over the floor measured right before it: drift in disk speed
    # between runs cancels out of these ratios.
    ratio = {k: statistics.median(e / f for e, f in zip(results[k], results["raw2"], strict=True))
             for k in ("forward", "rollback")}
    print(f"{args.steps} steps, median of {args.repeat} runs, µs per step")
    print(f"  raw SQLite, 1 commit  (WAL+NORMAL) : {med['raw1']:8.1f}")
    print(f"  raw SQLite, 2 commits (WAL+NORMAL) : {med['raw2']:8.1f}   (the floor)")
    for key, label in (("forward", "forward step      "), ("rollback", "rollback handler  ")):
        print(f"  emulator {label}        : {med[key]:8.1f}   ({ratio[key]:.2f}x the floor; "
              f"best run {min(results[key]):.1f})")


if __name__ == "__main__":
    main()
