"""Run ``N`` one-step instances to their end in a fresh process, then print its RSS as JSON.

Usage: ``python -m benchmarks.memory_probe STATE_DIR N``. The emulator stays open while the
RSS is read, as a dev server holding that many finished instances would.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path

from workflows_emulator import Emulator

from .emulator_scenarios import BATCH, BenchWorkflow

MB = 1_000_000


def current_rss_mb() -> float:
    """This process's resident set size now (Linux ``/proc/self/status``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


async def _probe(state: Path, instances: int) -> float:
    async with Emulator(state) as emu:
        wf = emu.workflow(BenchWorkflow, name="bench", env={})
        for made in range(0, instances, BATCH):
            batch = [{"params": {"scenario": "one-step"}} for _ in range(min(BATCH, instances - made))]
            for inst in await wf.create_batch(batch):
                status = await inst.wait()
                if status["status"] != "complete":
                    raise RuntimeError(f"instance ended {status}")
        gc.collect()
        return current_rss_mb()


def main(argv: list[str]) -> int:
    state, instances = Path(argv[0]), int(argv[1])
    print(json.dumps({"instances": instances, "rss_mb": asyncio.run(_probe(state, instances))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
