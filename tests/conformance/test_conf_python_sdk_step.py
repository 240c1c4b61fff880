"""Ports of workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py (the
Python SDK's workflow tests) with the workflow of ``worker_workflow.py`` in the same folder,
written with ``workflows_saga`` instead of ``workers``. The source polls ``status()`` in real
time; the ports use ``inst.wait()``. The ``to_js`` variants do not apply (README.md)."""

from __future__ import annotations

import datetime
from typing import Any

from workflows_emulator import Emulator
from workflows_saga import NonRetryableError, WorkflowEntrypoint

TERMINAL = ("complete", "errored", "terminated")


class TestWorkflow(WorkflowEntrypoint):
    """worker_workflow.py's TestWorkflow, mode by mode."""

    __test__ = False

    async def run(self, event: Any, step: Any) -> Any:
        mode = event["payload"].get("mode", "echo")
        handler = getattr(self, f"_{mode}", None)
        if handler is None:
            raise ValueError(f"unknown workflow mode: {mode}")
        return await handler(event, step)

    async def _echo(self, event: Any, step: Any) -> Any:
        payload = event["payload"]

        @step.do("echo")
        async def echo() -> Any:
            return {"echo": payload}

        return await echo()

    async def _implicit_deps(self, event: Any, step: Any) -> Any:
        @step.do()
        async def base_value() -> int:
            return 10

        @step.do()
        async def derived(base_value: int) -> int:
            return base_value + 5

        return {"derived": await derived()}

    async def _concurrent(self, event: Any, step: Any) -> Any:
        @step.do()
        async def left() -> int:
            return 2

        @step.do()
        async def right() -> int:
            return 3

        @step.do(concurrent=True)
        async def combined(left: int, right: int) -> int:
            return left * right

        return {"combined": await combined()}

    async def _sleep(self, event: Any, step: Any) -> Any:
        await step.sleep("nap", 0)
        return {"slept": True}

    async def _sleep_until(self, event: Any, step: Any) -> Any:
        when = datetime.datetime.now() + datetime.timedelta(milliseconds=100)
        await step.sleep_until("nap-until", when)
        return {"slept_until": True}

    async def _wait_for_event(self, event: Any, step: Any) -> Any:
        received = await step.wait_for_event("await-approval", "approval")
        return {"event_payload": received["payload"]}

    async def _event_metadata(self, event: Any, step: Any) -> Any:
        return {
            "payload": event["payload"],
            "has_timestamp": "timestamp" in event,
            "instance_id": event.get("instanceId"),
            "workflow_name": event.get("workflowName"),
        }

    async def _ctx(self, event: Any, step: Any) -> Any:
        @step.do("ctx-step")
        async def read_ctx(ctx: Any) -> Any:
            return {
                "step_name": ctx["step"]["name"],
                "step_count": ctx["step"]["count"],
                "attempt": int(ctx["attempt"]),
                "has_config": "config" in ctx,
            }

        return await read_ctx()

    async def _retry(self, event: Any, step: Any) -> Any:
        @step.do("retry-step",
                 config={"retries": {"limit": 1, "delay": 0, "backoff": "constant"}})
        async def flaky(ctx: Any) -> Any:
            if int(ctx["attempt"]) < 2:
                raise ValueError("transient failure")
            return {"succeeded_on_attempt": int(ctx["attempt"])}

        return await flaky()

    async def _non_retryable(self, event: Any, step: Any) -> Any:
        @step.do("non-retryable-step",
                 config={"retries": {"limit": 1, "delay": 0, "backoff": "constant"}})
        async def boom() -> None:
            raise NonRetryableError("do not retry")

        return await boom()

    async def _catch_error(self, event: Any, step: Any) -> Any:
        @step.do("failing-step",
                 config={"retries": {"limit": 0, "delay": 0, "backoff": "constant"}})
        async def failing() -> None:
            raise TypeError("intentional failure")

        try:
            await failing()
        except Exception as exc:
            return {"caught": type(exc).__name__, "message": str(exc)}
        return {"caught": None}


def binding(emu: Emulator) -> Any:
    return emu.workflow(TestWorkflow, name="my-workflow")


async def test_create_with_explicit_id(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_create_with_explicit_id"."""
    instance = await binding(emu).create(id="explicit-create-id", params={"name": "py"})
    assert instance.id == "explicit-create-id"


async def test_get_returns_instance(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_get_returns_instance"."""
    wf = binding(emu)
    created = await wf.create(id="get-target-id", params={"name": "py"})
    fetched = await wf.get(created.id)
    assert fetched.id == "get-target-id"


async def test_status_round_trips_payload(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_status_round_trips_payload"."""
    instance = await binding(emu).create(params={"name": "py", "nested": {"n": 42}})
    status = await instance.wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"]["echo"]["name"] == "py"
    assert status["output"]["echo"]["nested"]["n"] == 42


async def test_create_batch(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_create_batch"."""
    instances = await binding(emu).create_batch([
        {"id": "batch-id-a", "params": {"n": 1}},
        {"id": "batch-id-b", "params": {"n": 2}},
    ])
    assert [i.id for i in instances] == ["batch-id-a", "batch-id-b"]


async def test_send_event(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_send_event"."""
    instance = await binding(emu).create(params={"mode": "wait_for_event"})
    await emu.settle()
    settled = await instance.status()
    assert settled["status"] not in TERMINAL, settled
    await instance.send_event("approval", {"approved": True})
    status = await instance.wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"]["event_payload"]["approved"] is True


async def test_step_implicit_dependencies(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_step_implicit_dependencies"."""
    status = await (await binding(emu).create(params={"mode": "implicit_deps"})).wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"]["derived"] == 15


async def test_step_concurrent_dependencies(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_step_concurrent_dependencies"."""
    status = await (await binding(emu).create(params={"mode": "concurrent"})).wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"]["combined"] == 6


async def test_step_sleep(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_step_sleep"."""
    status = await (await binding(emu).create(params={"mode": "sleep"})).wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"]["slept"] is True


async def test_step_sleep_until(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_step_sleep_until"."""
    status = await (await binding(emu).create(params={"mode": "sleep_until"})).wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"]["slept_until"] is True


async def test_step_context(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_step_context"."""
    status = await (await binding(emu).create(params={"mode": "ctx"})).wait(timeout=10)
    assert status["status"] == "complete", status
    out = status["output"]
    assert out["step_name"] == "ctx-step"
    assert out["step_count"] >= 1
    assert out["attempt"] >= 1
    assert out["has_config"] is True


async def test_event_metadata(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_event_metadata"."""
    instance = await binding(emu).create(
        id="meta-id", params={"mode": "event_metadata", "tag": "xyz"})
    status = await instance.wait(timeout=10)
    assert status["status"] == "complete", status
    out = status["output"]
    assert out["payload"]["tag"] == "xyz"
    assert out["has_timestamp"] is True
    assert out["instance_id"] == "meta-id"
    assert isinstance(out["workflow_name"], str) and out["workflow_name"]


async def test_step_retry_config(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_step_retry_config"."""
    status = await (await binding(emu).create(params={"mode": "retry"})).wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"]["succeeded_on_attempt"] == 2


async def test_non_retryable_error(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_non_retryable_error"."""
    status = await (await binding(emu).create(params={"mode": "non_retryable"})).wait(timeout=10)
    assert status["status"] == "errored", status


async def test_error_handling_catch(emu: Emulator) -> None:
    """workers-py packages/runtime-sdk/tests/bindings-test/src/test_workflow.py:
    "test_error_handling_catch"."""
    status = await (await binding(emu).create(params={"mode": "catch_error"})).wait(timeout=10)
    assert status["status"] == "complete", status
    assert status["output"]["caught"] is not None
    assert status["output"]["message"]
