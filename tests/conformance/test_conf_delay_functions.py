"""Ports of workers-sdk packages/workflows-shared/tests/lib/delay.test.ts, describe
"invokeDelayFunction".

The source calls the engine's helper directly; the ports hand the same delay functions to
``step.do(..., config={"retries": {"delay": fn}})`` and read what the engine made of them: the
retry delay it logged, or the step failing for good with the helper's message. The
``raceAgainstAbort`` describe and the logger/abort-signal cases test JS internals (README.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conf_support import count, first, make

from workflows_emulator import Emulator


async def run_with_delay(emu: Emulator, delay: Any) -> tuple[dict[str, Any], Any]:
    calls = 0

    async def body(event: Any, step: Any) -> str:
        def cb() -> str:
            nonlocal calls
            calls += 1
            if calls < 2:
                raise Exception("transient")
            return "ok"

        return await step.do("step", cb, config={
            "retries": {"limit": 3, "delay": delay, "backoff": "constant"}})

    inst = await emu.workflow(make(body), name="delay").create(id="d")
    return await inst.wait(timeout=15), inst


def retry_gap(inst: Any) -> float:
    starts = [e["timestamp"] for e in inst.events() if e["event"] == "ATTEMPT_START"]
    return float(starts[1] - starts[0])


async def test_returns_the_value_a_synchronous_delay_function_produces(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/lib/delay.test.ts:
    "invokeDelayFunction > returns the value a synchronous delay function produces"."""
    status, inst = await run_with_delay(emu, lambda _input: 1234)
    assert status["status"] == "complete"
    assert first(inst, "ATTEMPT_FAILURE")["data"]["retryDelayMs"] == 1234
    assert retry_gap(inst) == 1234


async def test_awaits_an_asynchronous_delay_function(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/lib/delay.test.ts:
    "invokeDelayFunction > awaits an asynchronous delay function"."""

    async def delay(_input: Any) -> int:
        return 1234

    status, inst = await run_with_delay(emu, delay)
    assert status["status"] == "complete"
    assert first(inst, "ATTEMPT_FAILURE")["data"]["retryDelayMs"] == 1234
    assert retry_gap(inst) == 1234


@pytest.mark.slow
async def test_throws_when_the_delay_function_never_resolves_timeout(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/lib/delay.test.ts:
    "invokeDelayFunction > throws when the delay function never resolves (timeout)"."""

    async def never(_input: Any) -> int:
        await asyncio.Event().wait()
        return 0

    status, inst = await run_with_delay(emu, never)
    assert status["status"] == "errored"
    assert count(inst, "ATTEMPT_START") == 1
    assert "did not return within 5 seconds" in status["error"]["message"]


async def test_throws_when_the_delay_function_throws_synchronously(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/lib/delay.test.ts:
    "invokeDelayFunction > throws when the delay function throws synchronously"."""

    def delay(_input: Any) -> int:
        raise Exception("sync boom")

    status, inst = await run_with_delay(emu, delay)
    assert status["status"] == "errored"
    assert count(inst, "ATTEMPT_START") == 1
    assert "threw an error: sync boom" in status["error"]["message"]


async def test_throws_when_the_delay_function_rejects(emu: Emulator) -> None:
    """workers-sdk packages/workflows-shared/tests/lib/delay.test.ts:
    "invokeDelayFunction > throws when the delay function rejects"."""

    async def delay(_input: Any) -> int:
        raise Exception("async boom")

    status, inst = await run_with_delay(emu, delay)
    assert status["status"] == "errored"
    assert count(inst, "ATTEMPT_START") == 1
    assert "threw an error: async boom" in status["error"]["message"]
