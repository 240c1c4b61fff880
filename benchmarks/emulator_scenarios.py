"""The scenarios on the emulator, through its public Python API, with the virtual clock.

Each call opens a fresh `Emulator` on a new state directory under the folder it is given
(the same disk as the floor), runs one workload and returns its cost in the scenario's unit.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from workflows_emulator import Emulator
from workflows_saga import WorkflowEntrypoint, WorkflowStep

from .scenarios import Scenario

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
BATCH = 100  # the most instances one create_batch takes, as on Cloudflare


async def _undo() -> None:
    return None


class BenchWorkflow(WorkflowEntrypoint):
    """Every workload, chosen by ``event["payload"]["scenario"]``; mirrors wrangler_worker/worker.mjs.

    ``self.env`` is a dict the benchmark reads back: the rollback scenario writes the moment
    it fails into ``env["failed_at"]``.
    """

    async def run(self, event: dict[str, Any], step: WorkflowStep) -> Any:
        scenario, n = event["payload"]["scenario"], event["payload"].get("n", 0)
        if scenario == "sequential":
            for i in range(n):
                await step.do("s", lambda i=i: i)
            return n
        if scenario == "rollback":
            for i in range(n):
                await step.do("s", lambda i=i: i, rollback=_undo)
            self.env["failed_at"] = time.perf_counter()  # the rollback phase starts here
            raise RuntimeError("roll everything back")
        if scenario == "parallel":
            await asyncio.gather(*(step.do(f"p{i}", lambda i=i: i) for i in range(n)))
            return n
        if scenario == "one-step":
            return await step.do("s", lambda: 1)
        if scenario == "sleep":
            await step.sleep("nap", "30 days")
            return "rested"
        raise ValueError(f"unknown scenario {scenario!r}")


def _expect(status: dict[str, Any], wanted: str) -> None:
    if status["status"] != wanted:
        raise RuntimeError(f"benchmark instance ended {status}, expected {wanted}")


async def _measure(state: Path, scenario: Scenario) -> float:
    marks: dict[str, float] = {}
    async with Emulator(state, step_limit=max(scenario.n, 10_000)) as emu:
        wf = emu.workflow(BenchWorkflow, name="bench", env=marks)
        n = scenario.n
        start = time.perf_counter()
        if scenario.kind in ("sequential", "parallel"):
            _expect(await (await wf.create(params={"scenario": scenario.kind, "n": n})).wait(), "complete")
            return (time.perf_counter() - start) / n * 1e6
        if scenario.kind == "rollback":
            status = await (await wf.create(params={"scenario": "rollback", "n": n})).wait()
            if status["rollback"] != {"outcome": "complete", "error": None}:
                raise RuntimeError(f"rollback did not complete: {status}")
            return (time.perf_counter() - marks["failed_at"]) / n * 1e6
        if scenario.kind == "one-by-one":
            for _ in range(n):
                _expect(await (await wf.create(params={"scenario": "one-step"})).wait(), "complete")
            return (time.perf_counter() - start) / n * 1e6
        if scenario.kind == "at-once":
            instances = []
            for made in range(0, n, BATCH):
                batch = [{"params": {"scenario": "one-step"}} for _ in range(min(BATCH, n - made))]
                instances += await wf.create_batch(batch)
            for inst in instances:
                _expect(await inst.wait(), "complete")
            return (time.perf_counter() - start) / n * 1e6
        if scenario.kind == "sleep":
            before = emu.clock.now_ms()
            _expect(await (await wf.create(params={"scenario": "sleep"})).wait(), "complete")
            elapsed_ms = (time.perf_counter() - start) * 1e3
            if emu.clock.now_ms() - before < THIRTY_DAYS_MS:
                raise RuntimeError("the virtual clock did not move 30 days")
            return elapsed_ms
    raise ValueError(f"{scenario.kind} is not an emulator workload")


def measure(state: Path, scenario: Scenario) -> float:
    """Run ``scenario`` once in a fresh emulator on ``state``; its cost in ``scenario.unit``."""
    return asyncio.run(_measure(state, scenario))


async def build_long_instance(state: Path, steps: int) -> str:
    """Leave one finished ``steps``-step instance of workflow ``bench`` in ``state``; its id."""
    async with Emulator(state, step_limit=max(steps, 10_000)) as emu:
        wf = emu.workflow(BenchWorkflow, name="bench", env={})
        inst = await wf.create(id="long", params={"scenario": "sequential", "n": steps})
        _expect(await inst.wait(), "complete")
        return inst.id
