"""docs/porting.md against wrangler's local Workflows engine (miniflare from node_modules,
offline, under Node 22): the first port's JS and its Python port end the same way with the same
params, events and fake payments; what JS sees of errors crossing the step boundary is what the
guide says, and the Python side of each crossing is what it says too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from porting_guide.guide_blocks import GUIDE, REPO, guide_blocks, runnable_samples
from workflows_emulator import Emulator
from workflows_saga import NonRetryableError, StepError, WorkflowEntrypoint, WorkflowTimeoutError

NODE = REPO / "node_modules" / "node" / "bin" / "node"
MINIFLARE = REPO / "node_modules" / "miniflare" / "package.json"
JS = Path(__file__).resolve().parent / "js"

SCENARIOS = [
    {"id": "o-1", "params": {"orderId": "o-1", "amount": 30},
     "event": {"type": "approval", "payload": {"ok": True}}},
    {"id": "o-2", "params": {"orderId": "o-2", "amount": 30},
     "event": {"type": "approval", "payload": {"ok": False}}},
]


def run_js(tmp_path: Path, workflow: str, scenarios: list[dict[str, Any]]
           ) -> list[dict[str, Any]]:
    """Each scenario's end on wrangler's local engine, ``workflow`` being the JS module text
    (its class ``Checkout`` is given a fake ``PAYMENTS``)."""
    missing = [str(p.relative_to(REPO)) for p in (NODE, MINIFLARE) if not p.exists()]
    assert not missing, f"npm tooling not installed ({missing}): make .build/realruntime.stamp"
    (tmp_path / "checkout.mjs").write_text(workflow)
    (tmp_path / "worker.mjs").write_text((JS / "worker.mjs").read_text())
    (tmp_path / "scenarios.json").write_text(json.dumps(scenarios))
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
    checkout = next(b for b in guide_blocks() if b.lang == "js" and "class Checkout" in b.body)
    js = run_js(tmp_path, checkout.body, SCENARIOS)
    assert js[0]["output"] == {"captured": "hold-o-1-30", "attempt": 1}  # the JS really ran
    assert await run_python() == js


@pytest.mark.e2e
async def test_errors_out_of_a_js_step_are_plain_errors_as_the_guide_says(tmp_path: Path) -> None:
    [end] = run_js(tmp_path, (JS / "probe.mjs").read_text(), [{"id": "p-1", "params": {}}])
    seen, handler = end["released"]
    assert seen == {
        "nonRetryable": ["Error", "NonRetryableError: card declined", False],
        "custom": ["Error", "PaymentDeclined: insufficient funds", False],
        "eventTimeout": ["Error", "WorkflowTimeoutError: Execution timed out after 1000ms", False],
        "undefinedOutput": True, "timestampIsDate": True}
    assert handler == {"handler": ["Error", "PaymentDeclined: declined at the end", True]}
    text = " ".join(GUIDE.read_text().split())
    for claim in ['`e.name` is `"Error"`', "`e instanceof NonRetryableError` is false",
                  '`"NonRetryableError: card declined"`']:
        assert claim in text, claim


async def test_the_python_side_of_the_same_crossings(workflows_emulator: Emulator) -> None:
    seen: dict[str, Any] = {}

    class PaymentDeclined(Exception):
        pass

    class Probe(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            no_retries = {"retries": {"limit": 0, "delay": 0}}
            try:
                await step.do("non-retryable", lambda: raise_(NonRetryableError("card declined")))
            except NonRetryableError as e:
                seen["nonRetryable"] = [type(e).__name__, e.name, e.message]
            try:
                await step.do("custom", lambda: raise_(PaymentDeclined("insufficient funds")),
                              config=no_retries)
            except StepError as e:
                seen["custom"] = [type(e).__name__, e.name, e.message]
            try:
                await step.wait_for_event("receipt", "receipt", timeout="1 second")
            except WorkflowTimeoutError as e:
                seen["eventTimeout"] = [type(e).__name__, e.name, e.message]
            seen["noneOutput"] = await step.do("nothing", lambda: None) is None

            def undo(rb: Any) -> None:
                seen["handler"] = [rb.error.name, rb.error.message, rb.output is None]

            await step.do("failing", lambda: raise_(PaymentDeclined("declined at the end")),
                          config=no_retries, rollback=undo)

    await (await workflows_emulator.workflow(Probe).create()).wait(timeout=10)
    assert seen == {
        "nonRetryable": ["NonRetryableError", "NonRetryableError", "card declined"],
        "custom": ["StepError", "PaymentDeclined", "insufficient funds"],
        "eventTimeout": ["WorkflowTimeoutError", "WorkflowTimeoutError",
                         "Execution timed out after 1000ms"],
        "noneOutput": True,
        "handler": ["PaymentDeclined", "declined at the end", True]}


def raise_(error: Exception) -> Any:
    raise error
