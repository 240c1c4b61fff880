"""The guide's first port, both sides: its JS Checkout on wrangler's local Workflows engine
(miniflare from node_modules, offline, under Node 22) and its Python port on the emulator, with
the same params, events and fake payments, end the same way."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from porting_guide.guide_blocks import REPO, guide_blocks, runnable_samples
from workflows_emulator import Emulator

NODE = REPO / "node_modules" / "node" / "bin" / "node"
MINIFLARE = REPO / "node_modules" / "miniflare" / "package.json"
JS = Path(__file__).resolve().parent / "js"

SCENARIOS = [
    {"id": "o-1", "params": {"orderId": "o-1", "amount": 30},
     "event": {"type": "approval", "payload": {"ok": True}}},
    {"id": "o-2", "params": {"orderId": "o-2", "amount": 30},
     "event": {"type": "approval", "payload": {"ok": False}}},
]


def run_js(tmp_path: Path) -> list[dict[str, Any]]:
    missing = [str(p.relative_to(REPO)) for p in (NODE, MINIFLARE) if not p.exists()]
    assert not missing, f"npm tooling not installed ({missing}): make .build/realruntime.stamp"
    checkout = next(b for b in guide_blocks() if b.lang == "js" and "class Checkout" in b.body)
    (tmp_path / "checkout.mjs").write_text(checkout.body)
    (tmp_path / "worker.mjs").write_text((JS / "worker.mjs").read_text())
    (tmp_path / "scenarios.json").write_text(json.dumps(SCENARIOS))
    done = subprocess.run([str(NODE), str(JS / "driver.mjs"), str(tmp_path),
                           str(tmp_path / "scenarios.json")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    answers: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return answers


async def run_python() -> list[dict[str, Any]]:
    sample: dict[str, Any] = {}
    exec(compile(runnable_samples()["test_checkout.py"], "docs/porting.md", "exec"), sample)
    released = sample["payments"].released
    answers = []
    async with Emulator() as emu:
        for scenario in SCENARIOS:
            inst = await emu.workflow(sample["Checkout"], name="checkout").create(
                id=scenario["id"], params=scenario["params"])
            event = scenario["event"]
            await inst.send_event(event["type"], event["payload"])  # buffered, as in JS
            status = await inst.wait(timeout=30)
            answers.append({"status": status["status"], "output": status["output"],
                            "error": status["error"], "released": list(released)})
    return answers


@pytest.mark.e2e
async def test_the_first_port_ends_as_the_js_original(tmp_path: Path) -> None:
    js = run_js(tmp_path)
    assert js[0]["output"] == {"captured": "hold-o-1-30", "attempt": 1}  # the JS really ran
    assert await run_python() == js
