"""Ports of workers-sdk packages/workflows-shared/tests/engine.test.ts, describe "Rollback".

Where the source clears ``engine.rollbackRegistry`` (the in-memory handlers) before a
terminate-with-rollback, the port stops the emulator and opens a new one on the same state
directory: the new engine has no handlers until it replays ``run()``.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from conf_support import Gate, count, first, make, targets

from workflows_emulator import Emulator
from workflows_saga import RollbackContext

NO_RETRY = {"retries": {"limit": 0, "delay": 0, "backoff": "constant"}}


async def noop_rollback(rb: RollbackContext[Any]) -> None:
    return None


async def run(emu: Emulator, body: Any, id: str) -> Any:
    inst = await emu.workflow(make(body), name="test-workflow").create(id=id)
    await inst.wait(timeout=10)
    return inst


async def test_runs_rollback_fns_in_lifo_order_on_workflow_failure(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > runs rollback fns in LIFO order on workflow failure"."""

    async def body(event: Any, step: Any) -> None:
        await step.do("step-1", lambda: "out-1", rollback=noop_rollback)
        await step.do("step-2", lambda: "out-2", rollback=noop_rollback)
        await step.do("step-3", lambda: "out-3", rollback=noop_rollback)
        raise Exception("boom")

    inst = await run(emu, body, "RB-LIFO")
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["step-3-1", "step-2-1", "step-1-1"]
    assert targets(inst, "ROLLBACK_ATTEMPT_SUCCESS") == ["step-3-1", "step-2-1", "step-1-1"]
    assert count(inst, "ROLLBACK_FAILED") == 0


async def test_runs_parallel_rollbacks_in_reverse_step_start_order(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > runs parallel rollbacks in reverse step start order"."""
    first_started = asyncio.Event()
    first_may_finish = asyncio.Event()

    async def body(event: Any, step: Any) -> None:
        async def first_cb() -> str:
            first_started.set()
            await first_may_finish.wait()
            await asyncio.sleep(0.05)
            return "out-1"

        async def second_cb() -> str:
            first_may_finish.set()
            return "out-2"

        first_step = step.do("first", first_cb, rollback=noop_rollback)
        try:
            await asyncio.wait_for(first_started.wait(), 5)
        except BaseException:  # timed out, or cancelled when the emulator finds it stuck
            if inspect.iscoroutine(first_step):
                first_step.close()  # never started: drop it without a warning
            raise
        second_step = step.do("second", second_cb, rollback=noop_rollback)
        await asyncio.gather(first_step, second_step)
        raise Exception("boom")

    inst = await run(emu, body, "RB-PARALLEL")
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["second-1", "first-1"]


async def test_uses_rollback_config_when_executing_rollback(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > uses rollbackConfig when executing rollback"."""
    rollback_config = {"retries": {"limit": 0, "delay": 0, "backoff": "constant"},
                       "timeout": "30 seconds"}

    async def body(event: Any, step: Any) -> None:
        await step.do("configured-step", lambda: "out", rollback=noop_rollback,
                      rollback_config=rollback_config)
        raise Exception("boom")

    inst = await run(emu, body, "RB-CONFIG")
    assert count(inst, "ROLLBACK_COMPLETE") == 1
    assert first(inst, "ROLLBACK_STEP_START")["data"]["config"] == rollback_config


async def test_passes_rollback_context_to_rollback_fn(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > passes rollback context to rollback fn".

    JS ``new Error("boom")`` is Python's ``Exception("boom")``: its name is the class name."""

    async def check(rb: RollbackContext[Any]) -> None:
        if (
            rb.error.name != "Exception"  # type: ignore[attr-defined]
            or rb.error.message != "boom"  # type: ignore[attr-defined]
            or rb.output != "out"
            or rb.ctx["step"]["name"] != "ctx-step"
            or rb.ctx["step"]["count"] != 1
            or f"{rb.ctx['step']['name']}-{rb.ctx['step']['count']}" != "ctx-step-1"
        ):
            raise Exception("unexpected rollback context")

    async def body(event: Any, step: Any) -> None:
        await step.do("ctx-step", lambda: "out", rollback=check)
        raise Exception("boom")

    inst = await run(emu, body, "RB-CONTEXT")
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["ctx-step-1"]


async def test_runs_rollback_for_failed_step(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > runs rollback for failed step"."""

    async def check(rb: RollbackContext[Any]) -> None:
        if (
            rb.error.message != "step-boom"  # type: ignore[attr-defined]
            or rb.output is not None
            or rb.ctx["step"]["name"] != "failed-step"
            or rb.ctx["step"]["count"] != 1
            or f"{rb.ctx['step']['name']}-{rb.ctx['step']['count']}" != "failed-step-1"
        ):
            raise Exception("unexpected failed-step rollback context")

    async def body(event: Any, step: Any) -> None:
        async def cb() -> None:
            raise Exception("step-boom")

        await step.do("failed-step", cb, config=NO_RETRY, rollback=check)

    inst = await run(emu, body, "RB-FAILED-STEP")
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["failed-step-1"]
    assert "failed-step-1" in targets(inst, "STEP_FAILURE")


async def test_only_runs_rollbacks_for_steps_with_a_registered_fn(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > only runs rollbacks for steps with a registered fn"."""

    async def body(event: Any, step: Any) -> None:
        await step.do("plain-step", lambda: "v1")
        await step.do("step-with-rollback", lambda: "v2", rollback=noop_rollback)
        await step.do("plain-step-after", lambda: "v3")
        raise Exception("boom")

    inst = await run(emu, body, "RB-PARTIAL")
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["step-with-rollback-1"]
    assert first(inst, "ROLLBACK_START")["data"]["totalSteps"] == 1


async def test_stops_at_the_first_failing_rollback_and_logs_rollback_failed(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > stops at the first failing rollback and logs ROLLBACK_FAILED"."""

    async def failing(rb: RollbackContext[Any]) -> None:
        raise Exception("rollback-boom")

    async def body(event: Any, step: Any) -> None:
        await step.do("step-1", lambda: "v1", rollback=noop_rollback)
        await step.do("step-2", lambda: "v2", rollback=failing, rollback_config=NO_RETRY)
        await step.do("step-3", lambda: "v3", rollback=noop_rollback)
        raise Exception("boom")

    inst = await run(emu, body, "RB-FAILS")
    assert count(inst, "ROLLBACK_FAILED") == 1
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["step-3-1"]
    assert targets(inst, "ROLLBACK_STEP_FAILURE") == ["step-2-1"]
    assert targets(inst, "ROLLBACK_ATTEMPT_FAILURE") == ["step-2-1"]
    assert count(inst, "ROLLBACK_COMPLETE") == 0


async def test_runs_rollback_when_terminate_requests_it(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > runs rollback when terminate requests it"."""

    async def body(event: Any, step: Any) -> None:
        await step.do("setup-resource", lambda: "resource-id", rollback=noop_rollback)
        await step.sleep("wait-forever", "1 hour")

    inst = await emu.workflow(make(body), name="test-workflow").create(id="RB-TERMINATE")
    await inst.wait(until="waiting", timeout=10)
    assert "setup-resource-1" in targets(inst, "STEP_SUCCESS")
    await inst.terminate(rollback=True)
    assert count(inst, "WORKFLOW_TERMINATED") == 1
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["setup-resource-1"]
    assert count(inst, "ROLLBACK_COMPLETE") == 1


async def _terminate_after_reopen(state: Path, id: str, body: Any, prepare: Any,
                                  replay_body: Any = None) -> Any:
    """Run ``body`` until ``prepare(emu, inst)`` returns, stop the engine, open a new one on
    the same state (an empty handler registry) and terminate with rollback."""
    async with Emulator(state) as emu:
        inst = await emu.workflow(make(body), name="test-workflow").create(id=id)
        await prepare(emu, inst)
    # Cloudflare's engine has no determinism guard: a replay that changed is its case here
    async with Emulator(state, determinism="off") as emu:
        wf = emu.workflow(make(replay_body or body), name="test-workflow")
        inst = await wf.get(id)
        await inst.terminate(rollback=True)
        await inst.wait(timeout=10)
        return inst.events()


async def _until_waiting(emu: Emulator, inst: Any) -> None:
    await inst.wait(until="waiting", timeout=10)


async def test_replays_cached_steps_before_terminate_rollback_when_registry_is_empty(
        tmp_path: Path) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > replays cached steps before terminate rollback when registry is empty"."""

    async def body(event: Any, step: Any) -> None:
        await step.do("setup-resource", lambda: "resource-id", rollback=noop_rollback)
        await step.sleep("wait-forever", "1 hour")

    inst = await _terminate_after_reopen(tmp_path / "s", "RB-TERMINATE-REPLAY", body,
                                            _until_waiting)
    assert count(inst, "WORKFLOW_TERMINATED") == 1
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["setup-resource-1"]
    assert count(inst, "ROLLBACK_COMPLETE") == 1


async def test_replays_started_unfinished_steps_before_terminate_rollback_when_registry_is_empty(
        tmp_path: Path) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > replays started unfinished steps before terminate rollback when registry is empty"."""
    gate = Gate()

    async def body(event: Any, step: Any) -> None:
        await step.do("started-setup", lambda: gate("late-resource-id"), rollback=noop_rollback)

    async def started(emu: Emulator, inst: Any) -> None:
        await gate.until_entered()
        assert "started-setup-1" in [e["step"] for e in inst.events()
                                     if e["event"] == "ATTEMPT_START"]

    inst = await _terminate_after_reopen(
        tmp_path / "s", "RB-TERMINATE-STARTED-REPLAY", body, started)
    assert count(inst, "WORKFLOW_TERMINATED") == 1
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["started-setup-1"]
    assert count(inst, "ROLLBACK_COMPLETE") == 1


async def test_fails_terminate_rollback_when_replay_cannot_rebuild_an_eligible_handler(
        tmp_path: Path) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > fails terminate rollback when replay cannot rebuild an eligible handler"."""

    async def body(event: Any, step: Any) -> None:
        await step.do("branchy-setup", lambda: "resource-id", rollback=noop_rollback)
        await step.sleep("wait-forever", "1 hour")

    async def replay(event: Any, step: Any) -> None:
        # nondeterministic control flow that no longer reaches the persisted step
        await step.sleep("wait-forever", "1 hour")

    inst = await _terminate_after_reopen(
        tmp_path / "s", "RB-TERMINATE-MISSING-REPLAY", body, _until_waiting, replay)
    assert count(inst, "WORKFLOW_TERMINATED") == 1
    assert targets(inst, "ROLLBACK_STEP_FAILURE") == ["branchy-setup-1"]
    assert count(inst, "ROLLBACK_FAILED") == 1
    assert count(inst, "ROLLBACK_COMPLETE") == 0


async def test_replays_cached_failed_steps_before_terminate_rollback_when_registry_is_empty(
        tmp_path: Path) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > replays cached failed steps before terminate rollback when registry is empty"."""

    async def body(event: Any, step: Any) -> None:
        async def cb() -> None:
            raise Exception("step-boom")

        try:
            await step.do("failed-setup", cb, config=NO_RETRY, rollback=noop_rollback)
        except Exception:
            pass  # keep running so terminate rollback can replay the cached failure
        await step.sleep("wait-forever", "1 hour")

    inst = await _terminate_after_reopen(
        tmp_path / "s", "RB-TERMINATE-FAILED-REPLAY", body, _until_waiting)
    assert "failed-setup-1" in targets(inst, "STEP_FAILURE")
    assert count(inst, "WORKFLOW_TERMINATED") == 1
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["failed-setup-1"]
    assert count(inst, "ROLLBACK_COMPLETE") == 1


async def test_omits_dynamic_delay_from_rollback_ctx_config_on_cached_error_replay(
        tmp_path: Path) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > omits dynamic delay from rollback ctx.config on cached-error replay"."""

    async def check(rb: RollbackContext[Any]) -> None:
        if "delay" in rb.ctx["config"]["retries"]:
            raise Exception("dynamic delay marker leaked into rollback ctx.config")

    async def body(event: Any, step: Any) -> None:
        async def cb() -> None:
            raise Exception("step-boom")

        try:
            await step.do("failed-setup", cb, rollback=check, config={
                "retries": {"limit": 0, "delay": lambda _input: 1000, "backoff": "constant"}})
        except Exception:
            pass
        await step.sleep("wait-forever", "1 hour")

    inst = await _terminate_after_reopen(
        tmp_path / "s", "RB-TERMINATE-FAILED-REPLAY-DYNAMIC-DELAY", body, _until_waiting)
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["failed-setup-1"]
    assert count(inst, "ROLLBACK_COMPLETE") == 1


async def test_runs_terminate_rollback_while_paused_with_an_empty_registry(tmp_path: Path) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > runs terminate rollback while paused with an empty registry"."""

    async def body(event: Any, step: Any) -> None:
        await step.do("setup-resource", lambda: "resource-id", rollback=noop_rollback)
        await step.sleep("wait-forever", "1 hour")

    async def paused(emu: Emulator, inst: Any) -> None:
        await inst.wait(until="waiting", timeout=10)
        await inst.pause()
        assert (await inst.status())["status"] == "paused"

    inst = await _terminate_after_reopen(tmp_path / "s", "RB-TERMINATE-PAUSED", body, paused)
    assert count(inst, "WORKFLOW_TERMINATED") == 1
    assert targets(inst, "ROLLBACK_STEP_SUCCESS") == ["setup-resource-1"]
    assert count(inst, "ROLLBACK_COMPLETE") == 1


async def test_does_not_run_rollback_when_workflow_succeeds(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/engine.test.ts:
    "Rollback > does not run rollback when workflow succeeds"."""

    async def body(event: Any, step: Any) -> str:
        await step.do("a", lambda: "ok", rollback=noop_rollback)
        return "done"

    inst = await run(emu, body, "RB-NOOP")
    assert count(inst, "WORKFLOW_SUCCESS") == 1
    assert count(inst, "ROLLBACK_START") == 0
