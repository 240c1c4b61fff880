"""`AttemptRunner` alone: retries, backoff, non-retryable errors, crash recovery, every
transition committed to a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator_support import ClockHost, open_store
from workflows_emulator.attempts import AttemptRunner, PlannedStep
from workflows_saga import NonRetryableError, RetryPolicy, StepConfig, StepContext, StepError
from workflows_saga.backend import resolve_config


def planned(config: Any) -> PlannedStep:
    return PlannedStep("do:1:s", "do", "s", 1, 0, config.shown)


async def test_retries_back_off_and_every_attempt_is_folded(tmp_path: Path) -> None:
    host, store = ClockHost(), open_store(tmp_path)
    resolved = resolve_config(StepConfig(retries=RetryPolicy(limit=3, delay=1000)))
    seen: list[int] = []

    async def flaky(ctx: StepContext) -> str:
        seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise KeyError(f"try {ctx.attempt}")
        return "ok"

    start = host.clock.now_ms()
    out = await AttemptRunner(host, store).run(None, planned(resolved), flaky, resolved)
    assert out == "ok" and seen == [1, 2, 3]
    assert host.parked_until == [start + 1000, start + 3000]  # exponential: 1 s, then 2 s
    row = store.load()["do:1:s"]  # what was committed, read back
    assert (row.state, row.output, row.attempts) == ("success", "ok", 3)
    assert [(a.state, a.retry_delay_ms) for a in row.attempt_log] == [
        ("failure", 1000), ("failure", 2000), ("success", None)]
    assert row.attempt_log[0].error is not None
    assert row.attempt_log[0].error.to_json() == {"name": "KeyError", "message": "'try 1'"}
    store.close()


async def test_a_non_retryable_error_ends_the_step_at_once(tmp_path: Path) -> None:
    host, store = ClockHost(), open_store(tmp_path)
    resolved = resolve_config(None)

    async def refuse(ctx: StepContext) -> None:
        raise NonRetryableError("no")

    with pytest.raises(NonRetryableError, match="no"):
        await AttemptRunner(host, store).run(None, planned(resolved), refuse, resolved)
    row = store.rows["do:1:s"]
    assert (row.state, row.attempts, host.parked_until) == ("failure", 1, [])
    assert row.error is not None and row.error.name == "NonRetryableError"
    store.close()


async def test_an_error_keeps_only_cloudflare_s_types(tmp_path: Path) -> None:
    host, store = ClockHost(), open_store(tmp_path)
    resolved = resolve_config(StepConfig(retries=RetryPolicy(limit=0)))

    async def boom(ctx: StepContext) -> None:
        raise LookupError("gone")

    with pytest.raises(StepError) as caught:
        await AttemptRunner(host, store).run(None, planned(resolved), boom, resolved)
    assert (caught.value.name, caught.value.message) == ("LookupError", "gone")
    store.close()


def test_an_attempt_cut_off_by_a_crash_fails_and_is_retried_at_once(tmp_path: Path) -> None:
    host, store = ClockHost(), open_store(tmp_path)
    step = planned(resolve_config(None))
    with store.transaction():
        row = store.append("STEP_START", 0.0, key=step.key, label=step.label,
                           data=step.start_data())
        store.append("ATTEMPT_START", 0.0, row, attempt=1)
    store.close()

    reopened = open_store(tmp_path)
    reopened.load()
    AttemptRunner(host, reopened).recover_cut_off()
    row = reopened.load()["do:1:s"]
    assert row.state == "running" and not row.attempt_open and row.wake_at is None
    assert row.attempt_log[0].error is not None
    assert row.attempt_log[0].error.name == "WorkflowInternalError"
    reopened.close()
