"""Ports of workers-sdk packages/workflows-shared/tests/validators.test.ts.

The source calls the validators directly; the ports go through the public API that applies
each one: ``emu.workflow(cls, name=...)`` (workflow names), ``wf.create(id=...)`` (instance
ids), ``wf.get(id)`` (addressable ids: an invalid one is refused, a valid unknown one is not
found), ``step.do(name, ...)`` (step names) and ``step.do(..., config=...)`` (step configs).
JS ``undefined`` means "not given" in Python (a default name or a generated id), so those
values are not ported.
"""

from __future__ import annotations

from typing import Any

import pytest
from conf_support import make

from workflows_emulator import Emulator

MAX_WORKFLOW_NAME_LENGTH = 64
MAX_WORKFLOW_INSTANCE_ID_LENGTH = 100
MAX_ADDRESSABLE_WORKFLOW_INSTANCE_ID_LENGTH = 271
MAX_STEP_NAME_LENGTH = 256




async def _done(event: Any, step: Any) -> str:
    return "done"


async def step_outcome(emu: Emulator, name: Any = "step", config: Any = None) -> str:
    """"accepted" if ``step.do(name, cb, config=config)`` runs, "rejected" if it raises."""

    async def body(event: Any, step: Any) -> str:
        try:
            await step.do(name, lambda: "ok", config=config)
        except Exception as exc:
            return f"rejected: {type(exc).__name__}: {exc}"
        return "accepted"

    inst = await emu.workflow(make(body), name="validators").create(id="v")
    status = await inst.wait(timeout=10)
    assert status["status"] == "complete", status
    return str(status["output"])


# -- Workflow name validation -----------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "",
    float("nan"),
    "   ",
    "\n\nhello",
    "w" * (MAX_WORKFLOW_NAME_LENGTH + 1),
    "#1231231!!!!",
    "-badName",
])
def test_workflow_name_validation_should_reject_invalid_names(emu: Emulator, value: Any) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow name validation > should reject invalid names"."""
    with pytest.raises(Exception, match="invalid workflow name"):
        emu.workflow(make(_done), name=value)


@pytest.mark.parametrize("value", ["abc", "NAME_123-hello", "a-valid-string",
                                   "w" * MAX_WORKFLOW_NAME_LENGTH])
def test_workflow_name_validation_should_accept_valid_names(emu: Emulator, value: str) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow name validation > should accept valid names"."""
    assert emu.workflow(make(_done), name=value) is not None


# -- Workflow instance ID validation ----------------------------------------------------------


@pytest.mark.parametrize("value", [
    "",
    float("nan"),
    "   ",
    "\n\nhello",
    "w" * (MAX_WORKFLOW_INSTANCE_ID_LENGTH + 1),
    "#1231231!!!!",
])
async def test_workflow_instance_id_validation_should_reject_invalid_ids(
        emu: Emulator, value: Any) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow instance ID validation > should reject invalid IDs"."""
    wf = emu.workflow(make(_done), name="test-workflow")
    with pytest.raises(Exception, match="Workflow instance has invalid id"):
        await wf.create(id=value)


@pytest.mark.parametrize("value", ["abc", "NAME_123-hello", "a-valid-string",
                                   "w" * MAX_WORKFLOW_INSTANCE_ID_LENGTH])
async def test_workflow_instance_id_validation_should_accept_valid_ids(
        emu: Emulator, value: str) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow instance ID validation > should accept valid IDs"."""
    inst = await emu.workflow(make(_done), name="test-workflow").create(id=value)
    assert inst.id == value


# -- Addressable Workflow instance ID validation ----------------------------------------------


@pytest.mark.parametrize("value", [
    "",
    float("nan"),
    "w" * (MAX_ADDRESSABLE_WORKFLOW_INSTANCE_ID_LENGTH + 1),
    "invalid!",
    "0 0 * * MON?2-1786001400000",
])
async def test_addressable_workflow_instance_id_validation_should_reject_invalid_ids(
        emu: Emulator, value: Any) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Addressable Workflow instance ID validation > should reject invalid IDs"."""
    wf = emu.workflow(make(_done), name="test-workflow")
    with pytest.raises(Exception, match="invalid id"):
        await wf.get(value)


@pytest.mark.parametrize("value", [
    "abc",
    "*/30 * * * *-1786001400000",
    "0 0 * * MON#2-1786001400000",
    "0 0 1,15 * *-1786001400000",
    "NAME_123-/cron",
    "w" * MAX_ADDRESSABLE_WORKFLOW_INSTANCE_ID_LENGTH,
])
async def test_addressable_workflow_instance_id_validation_should_accept_valid_ids(
        emu: Emulator, value: str) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Addressable Workflow instance ID validation > should accept valid IDs"."""
    wf = emu.workflow(make(_done), name="test-workflow")
    with pytest.raises(Exception, match=r"instance\.not_found"):
        await wf.get(value)


# -- Workflow instance step name validation ---------------------------------------------------


@pytest.mark.parametrize("value", ["\x00", "w" * (MAX_STEP_NAME_LENGTH + 1)])
async def test_step_name_validation_should_reject_invalid_names(emu: Emulator, value: str) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow instance step name validation > should reject invalid names"."""
    assert (await step_outcome(emu, name=value)).startswith("rejected")


@pytest.mark.parametrize("value", ["abc", "NAME_123-hello", "a-valid-string",
                                   "w" * MAX_STEP_NAME_LENGTH, "valid step name"])
async def test_step_name_validation_should_accept_valid_names(emu: Emulator, value: str) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow instance step name validation > should accept valid names"."""
    assert await step_outcome(emu, name=value) == "accepted"


# -- Workflow step config validation ----------------------------------------------------------


@pytest.mark.parametrize("value", [
    {"timeout": "5 years", "retries": {"limit": 1}},
    {"timeout": "5 years", "retries": {"delay": 50}},
    {"timeout": "5 years", "retries": {"backoff": "exponential"}},
    {"timeout": "5 years",
     "retries": {"delay": "10 minutes", "limit": 5, "i-like-trains": "yes" * 100}},
    {"retries": {"limit": 3, "delay": "i like trains", "backoff": "constant"},
     "timeout": "10 minutes"},
    {"retries": {"limit": 3, "delay": 10, "backoff": "constant"}, "timeout": 0},
    {"timeout": "5 minutes", "sensitive": "all"},
    {"timeout": "5 minutes", "sensitive": True},
])
async def test_step_config_validation_should_reject_invalid_step_configs(
        emu: Emulator, value: Any) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow step config validation > should reject invalid step configs"."""
    assert (await step_outcome(emu, config=value)).startswith("rejected")


async def test_step_config_validation_should_accept_a_dynamic_delay_function(
        emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow step config validation > should accept a dynamic delay function"."""
    config = {"retries": {"limit": 3, "delay": lambda _input: "10 seconds",
                          "backoff": "constant"},
              "timeout": "10 minutes"}
    assert await step_outcome(emu, config=config) == "accepted"


@pytest.mark.parametrize("value", [
    {"retries": {"limit": 0, "delay": 100000, "backoff": "exponential"},
     "timeout": "15 minutes"},
    {"retries": {"limit": 5, "delay": 0, "backoff": "constant"}, "timeout": "2 minutes"},
    {"retries": {"limit": 3, "delay": 10, "backoff": "constant"}, "timeout": "2 minutes",
     "sensitive": "output"},
])
async def test_step_config_validation_should_accept_valid_step_configs(
        emu: Emulator, value: Any) -> None:
    """workers-sdk packages/workflows-shared/tests/validators.test.ts:
    "Workflow step config validation > should accept valid step configs"."""
    assert await step_outcome(emu, config=value) == "accepted"
