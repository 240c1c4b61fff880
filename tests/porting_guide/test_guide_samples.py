"""docs/porting.md's samples: every runnable Python block passes verbatim in a fresh project
(pytest in a subprocess, strict asyncio mode, no configuration of ours), every Python block is
marked, and every error message the guide shows is the one the binding gives."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from porting_guide.guide_blocks import GUIDE, error_blocks, guide_blocks, runnable_samples
from testing.projects import run_pytest
from workflows_emulator import Emulator
from workflows_saga import NonRetryableError, RollbackContext, WorkflowEntrypoint
from workflows_saga.testing import MemoryBackend

SAMPLE_TESTS = {"test_checkout.py": 3, "test_parallel.py": 1, "test_errors.py": 2,
                "test_proposal.py": 1, "test_moderate.py": 2}
"""Each runnable sample, and how many tests it holds."""


def test_every_python_block_is_runnable_or_a_fragment() -> None:
    python = [b for b in guide_blocks() if b.lang == "python"]
    assert python, "no Python blocks found"
    unmarked = [b.body.splitlines()[0] for b in python
                if not b.runnable_file and b.marker != "fragment"]
    assert unmarked == [], f"mark these blocks runnable or fragment: {unmarked}"


def test_the_runnable_samples_are_the_ones_expected() -> None:
    assert set(runnable_samples()) == set(SAMPLE_TESTS)


@pytest.mark.parametrize("name", sorted(SAMPLE_TESTS))
def test_a_runnable_sample_passes_verbatim_without_warnings(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(runnable_samples()[name])
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    run = run_pytest(tmp_path, "-q")
    assert run.returncode == 0, run.output
    assert f"{SAMPLE_TESTS[name]} passed" in run.output, run.output
    assert "warning" not in run.output.lower(), run.output


async def charge() -> str:
    return "ch_1"


def refund(rb: RollbackContext[Any]) -> None:
    """A handler, named in the messages."""


RETRIES = {"retries": {"limit": 2, "delay": "1 second"}}

ERROR_CALLS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "do-config-first": lambda step: step.do("charge", RETRIES, charge),
    "do-options-object": lambda step: step.do(
        "charge", charge, {"rollback": refund, "rollbackConfig": RETRIES}),
    "do-camel-keyword": lambda step: step.do("charge", charge, rollback=refund,
                                             rollbackConfig=RETRIES),
    "do-config-as-callback": lambda step: step.do("charge", RETRIES),
    "do-awaited-decorator": lambda step: step.do("charge", config=RETRIES),
    "wait-options-object": lambda step: step.wait_for_event(
        "approval", {"type": "approved", "timeout": "1 hour"}),
    "wait-camel-method": lambda step: step.waitForEvent("approval", {"type": "approved"}),
}


async def failed_instance_error(emu: Emulator, call: Callable[[Any], Awaitable[Any]]) -> str:
    """``"name: message"`` of the error a workflow making ``call`` fails with, nothing caught."""

    class Ported(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await call(step)

    status = await (await emu.workflow(Ported, name="ported").create()).wait(timeout=10)
    assert status["status"] == "errored", status
    return f"{status['error']['name']}: {status['error']['message']}"


def test_every_error_block_is_checked() -> None:
    assert set(error_blocks()) == set(ERROR_CALLS)


@pytest.mark.parametrize("error_id", sorted(ERROR_CALLS))
async def test_an_error_shown_in_the_guide_is_the_one_raised(
        workflows_emulator: Emulator, error_id: str) -> None:
    seen = await failed_instance_error(workflows_emulator, ERROR_CALLS[error_id])
    shown = error_blocks()[error_id]
    # the binding's own errors fail the instance as WorkflowFatalError; the guide names the
    # class a workflow would catch
    shown = shown.replace("InvalidStepConfigError: ", "WorkflowFatalError: ")
    assert seen == shown


def prose() -> str:
    return " ".join(GUIDE.read_text().split())


async def test_the_inline_errors_of_the_pitfalls_are_the_ones_raised(
        workflows_emulator: Emulator) -> None:
    class Dotted(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            try:
                await step.do("s", lambda ctx: ctx.step.name,
                              config={"retries": {"limit": 0, "delay": 0}})
            except Exception:
                pass

            def undo(rb: Any) -> None:
                rb["output"]

            await step.do("t", lambda: 1, rollback=undo)
            raise ValueError("fail, to roll back")

    inst = await workflows_emulator.workflow(Dotted).create()
    status = await inst.wait(timeout=10)
    assert status["rollback"]["error"]["name"] == "TypeError"
    handler_error = f"TypeError: {status['rollback']['error']['message']}"
    rows = [s for s in inst.steps() if s.name == "s"]
    assert rows[0].error is not None
    ctx_error = f"{rows[0].error.name}: {rows[0].error.message}"
    text = prose()
    assert f"`{ctx_error}`" in text, ctx_error
    assert f"`{handler_error}`" in text, handler_error


async def test_a_non_serialisable_output_fails_as_the_guide_says(
        workflows_emulator: Emulator) -> None:
    undone: list[Any] = []

    class Binary(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            await step.do("a", lambda: "kept", rollback=lambda rb: undone.append(rb.output))
            return await step.do("b", lambda: b"\x00\x01")

    status = await (await workflows_emulator.workflow(Binary).create()).wait(timeout=10)
    error = f"{status['error']['name']}: {status['error']['message']}"
    assert f"`{error}`" in prose(), error
    assert (status["rollback"], undone) == (None, [])  # "and no rollback runs"


async def test_the_delay_function_shape_the_guide_gives(workflows_emulator: Emulator) -> None:
    class RateLimited(Exception):
        pass

    shown = re.search(r'`"delay": (lambda arg: [^`]*)`', prose())
    assert shown is not None
    delay = eval(shown.group(1))  # the guide's own lambda

    class Limited(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            def call(ctx: Any) -> int:
                if ctx.attempt == 1:
                    raise RateLimited("rate limit hit")
                return int(ctx.attempt)

            return await step.do("call", call, config={"retries": {"limit": 1, "delay": delay}})

    inst = await workflows_emulator.workflow(Limited).create()
    assert (await inst.wait(timeout=10))["output"] == 2
    waits = [e["data"]["retryDelayMs"] for e in inst.events() if e["event"] == "ATTEMPT_FAILURE"]
    assert waits == [5000]  # the guide's "5 seconds", chosen from the error's text


def sample(name: str) -> dict[str, Any]:
    """The names a runnable sample defines (its module namespace)."""
    namespace: dict[str, Any] = {}
    exec(compile(runnable_samples()[name], f"docs/porting.md:{name}", "exec"), namespace)
    return namespace


async def test_the_samples_workflows_end_the_same_on_the_binding_s_memory_backend() -> None:
    quotes = await MemoryBackend().run(sample("test_parallel.py")["Quotes"])
    assert quotes == {"all": ["a", "b"], "race": "fast",
                      "settled": ["NonRetryableError", "StepError", "e"]}

    charge = sample("test_errors.py")["Charge"]
    backend = MemoryBackend()
    assert await backend.run(charge, {"card": "ok"}) == {
        "queued": True, "receipt": "Execution timed out after 3600000ms"}
    assert [a for a in backend.attempts if a[0] == "charge-1"] == [
        ("charge-1", 1), ("charge-1", 2), ("charge-1", 3)]

    checkout = sample("test_checkout.py")
    backend = MemoryBackend()
    backend.send_event("approval", {"ok": False})
    with pytest.raises(NonRetryableError, match="order o-9 refused"):
        await backend.run(checkout["Checkout"], {"orderId": "o-9", "amount": 5}, rollback=True)
    assert (backend.rolled_back, checkout["payments"].released) == (
        ["hold payment-1"], ["hold-o-9-5"])


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_guide_s_links_resolve() -> None:
    text = GUIDE.read_text()
    own = {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}
    readme = {slug(h) for h in re.findall(r"^#+ (.*)$",
                                          (GUIDE.parents[1] / "README.md").read_text(), re.M)}
    links = re.findall(r"\]\(([^)#]*)#([^)]+)\)", text)
    assert len(links) >= 6, links
    for target, anchor in links:
        assert anchor in (readme if target.endswith("README.md") else own), (target, anchor)
    for path in re.findall(r"\]\((\.\./[^)#]+)", text):
        assert (GUIDE.parent / path).exists(), path
