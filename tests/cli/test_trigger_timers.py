"""Without a dev server, ``trigger`` keeps driving its instance through near timers (retry
delays, short sleeps): nothing else would fire them once the command returns."""

from __future__ import annotations

import time
from pathlib import Path

from worker_projects import write_worker_project

from .conftest import run_cli

ENTRY = """
from workflows_saga import WorkflowEntrypoint

FLAKY = {"retries": {"limit": 2, "delay": "1 second", "backoff": "constant"}}


class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("flaky", config=FLAKY)
        async def flaky(ctx):
            if ctx.attempt < 2:
                raise RuntimeError("not yet")
            return ctx.attempt

        attempts = await flaky()
        await step.sleep("short nap", event["payload"]["nap"])
        return {"attempts": attempts}
"""


def _project(tmp_path: Path) -> list[str]:
    config = write_worker_project(tmp_path, ENTRY)
    return ["--config", str(config), "--persist-to", str(tmp_path / "s")]


def test_trigger_drives_through_a_retry_delay_and_a_short_sleep(tmp_path: Path) -> None:
    common = _project(tmp_path)
    began = time.monotonic()
    r = run_cli("workflows", "trigger", "flow", '{"nap": "1 second"}', "--id", "near", *common)
    took = time.monotonic() - began
    assert r.code == 0, r.err
    assert "Status: complete" in r.out
    assert took >= 2.0  # one retry delay and one sleep, waited out for real
    described = run_cli("workflows", "instances", "describe", "flow", "near", "--json", *common)
    assert described.json()["output"] == {"attempts": 2}


def test_trigger_returns_on_a_far_timer_and_says_when_it_fires(tmp_path: Path) -> None:
    common = _project(tmp_path)
    r = run_cli("workflows", "trigger", "flow", '{"nap": "1 hour"}', "--id", "far", *common)
    assert r.code == 0, r.err
    assert "Status: waiting" in r.out
    assert "timers fire only while a process drives this state directory" in r.out
    r = run_cli("workflows", "trigger", "flow", '{"nap": "3 seconds"}', "--id", "cut",
                "--timers-within", "0.5", *common)
    assert "Status: waiting" in r.out
