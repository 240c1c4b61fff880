"""The step API over `workflows_saga.testing.MemoryBackend`: no emulator, no SQLite."""

from __future__ import annotations

from typing import Any

import pytest

from workflows_saga import (
    InvalidStepConfigError,
    NonRetryableError,
    RollbackContext,
    StepContext,
    StepError,
    WorkflowEntrypoint,
    WorkflowTimeoutError,
)
from workflows_saga.backend import StepBackend
from workflows_saga.testing import MemoryBackend


def flow(body: Any) -> type[WorkflowEntrypoint]:
    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await body(event, step)

    return Flow


def test_it_is_a_step_backend() -> None:
    assert isinstance(MemoryBackend(), StepBackend)


async def test_decorator_form_runs_once_and_a_second_run_replays() -> None:
    ran: list[int] = []

    async def body(event: Any, step: Any) -> Any:
        @step.do("add")
        async def add() -> int:
            ran.append(1)
            return event["payload"] + 1

        return await add()

    backend = MemoryBackend()
    assert await backend.run(flow(body), 41) == 42
    assert await backend.run(flow(body), 41) == 42
    assert ran == [1]
    assert [c.name for c in backend.calls] == ["add", "add"]
    assert backend.attempts == [("add-1", 1)]


async def test_call_form_passes_ctx_only_to_callbacks_that_take_it() -> None:
    seen: list[StepContext] = []

    async def body(event: Any, step: Any) -> Any:
        first = await step.do("same", lambda ctx: seen.append(ctx) or ctx.count)
        second = await step.do("same", lambda: "no ctx")
        return [first, second]

    assert await MemoryBackend().run(flow(body)) == [1, "no ctx"]
    (ctx,) = seen
    assert ctx.name == "same" and ctx.attempt == 1
    assert ctx.config["retries"] == {"limit": 5, "delay": 10_000, "backoff": "exponential"}


async def test_implicit_dependencies_and_ctx_parameter() -> None:
    runs: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        @step.do()
        async def a() -> int:
            runs.append("a")
            return 2

        @step.do()
        async def b(a: int, ctx: StepContext) -> str:
            runs.append("b")
            return f"{a}:{ctx.name}"

        @step.do(concurrent=True)
        async def c(a: int, b: str) -> str:
            return f"{a}|{b}"

        return await c()

    assert await MemoryBackend().run(flow(body)) == "2|2:b"
    assert runs == ["a", "b"]


async def test_retries_record_backed_off_delays_without_sleeping() -> None:
    tries: list[int] = []

    async def flaky(ctx: StepContext) -> str:
        tries.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "ok"

    async def body(event: Any, step: Any) -> Any:
        config = {"retries": {"limit": 3, "delay": "1 second", "backoff": "linear"}}
        return await step.do("flaky", flaky, config=config)

    backend = MemoryBackend()
    assert await backend.run(flow(body)) == "ok"
    assert tries == [1, 2, 3]
    assert backend.delays == [("flaky-1", 1000), ("flaky-1", 2000)]


async def test_delay_function_decides_the_base_delay() -> None:
    async def body(event: Any, step: Any) -> Any:
        def delay(arg: Any) -> str:
            assert isinstance(arg["error"], ValueError)
            return f"{arg['ctx'].attempt} seconds"

        config = {"retries": {"limit": 2, "delay": delay, "backoff": "constant"}}
        return await step.do("f", lambda: int("x"), config=config)

    backend = MemoryBackend()
    with pytest.raises(ValueError, match="invalid literal"):
        await backend.run(flow(body))
    assert backend.delays == [("f-1", 1000), ("f-1", 2000)]


@pytest.mark.parametrize(
    ("raised", "expected", "attempts"),
    [
        (NonRetryableError("stop"), NonRetryableError, 1),
        (TypeError("bad type"), TypeError, 3),
        (KeyError("k"), StepError, 3),
    ],
)
async def test_errors_out_of_step_do(raised: Exception, expected: type, attempts: int) -> None:
    async def boom() -> None:
        raise raised

    async def body(event: Any, step: Any) -> Any:
        return await step.do("boom", boom, config={"retries": {"limit": 2, "delay": 0}})

    backend = MemoryBackend()
    with pytest.raises(expected) as info:
        await backend.run(flow(body))
    assert len(backend.attempts) == attempts
    if expected is StepError:
        assert (info.value.name, info.value.message) == ("KeyError", "'k'")  # type: ignore[attr-defined]
    with pytest.raises(expected):  # the final error is cached too: a replay raises it again
        await backend.run(flow(body))
    assert len(backend.attempts) == attempts


async def test_rollback_runs_newest_started_first_with_output_error_and_ctx() -> None:
    seen: list[RollbackContext[Any]] = []
    order: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        @step.do("reserve", rollback_config={"retries": {"limit": 1, "delay": 0}})
        async def reserve() -> dict[str, int]:
            return {"seat": 7}

        @reserve.rollback
        async def release(rb: RollbackContext[Any]) -> None:
            seen.append(rb)
            order.append("release")

        await reserve()
        await step.do("charge", lambda: {"id": "ch"},
                      rollback=lambda rb: order.append("refund"))
        await step.do("fails", lambda: {}["missing"],
                      rollback=lambda rb: order.append(f"undo-fails:{rb.output}"),
                      config={"retries": {"limit": 0, "delay": 0}})

    backend = MemoryBackend()
    with pytest.raises(StepError):
        await backend.run(flow(body), rollback=True)
    assert order == ["undo-fails:None", "refund", "release"]
    assert backend.rolled_back == ["fails-1", "charge-1", "reserve-1"]
    (rb,) = seen
    assert rb.output == {"seat": 7} and rb.step_name == "reserve-1"
    assert isinstance(rb.error, StepError) and rb.error.name == "KeyError"
    assert rb.ctx.name == "reserve" and rb.ctx.count == 1
    assert await backend.rollback(RuntimeError("again")) is None  # completed handlers never rerun
    assert order == ["undo-fails:None", "refund", "release"]


async def test_a_failing_handler_is_retried_per_rollback_config_and_halts_rollback() -> None:
    order: list[str] = []

    async def flaky_undo(rb: RollbackContext[Any]) -> None:
        order.append(f"undo-b:{rb.ctx.attempt}")
        raise RuntimeError("provider down")

    async def body(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=lambda rb: order.append("undo-a"))
        await step.do("b", lambda: 2, rollback=flaky_undo,
                      rollback_config={"retries": {"limit": 2, "delay": "5 seconds"}})
        raise ValueError("run failed")

    backend = MemoryBackend()
    with pytest.raises(ValueError, match="run failed"):
        await backend.run(flow(body))
    failure = await backend.rollback(ValueError("run failed"))
    assert failure is not None and failure.to_json() == {"name": "RuntimeError",
                                                         "message": "provider down"}
    assert order == ["undo-b:1", "undo-b:1", "undo-b:1"]  # rb.ctx is the forward step's
    assert backend.delays == [("b-1", 5000), ("b-1", 10_000)]
    assert backend.rolled_back == []


async def test_rollback_config_without_a_handler_is_refused_when_awaited() -> None:
    async def body(event: Any, step: Any) -> Any:
        @step.do("x", rollback_config={"retries": {"limit": 1, "delay": 0}})
        async def x() -> int:
            return 1

        return await x()

    with pytest.raises(InvalidStepConfigError, match="must be a function"):
        await MemoryBackend().run(flow(body))


async def test_sleeps_are_recorded_and_events_are_buffered() -> None:
    async def body(event: Any, step: Any) -> Any:
        await step.sleep("nap", "3 hours")
        await step.sleep_until("alarm", 1_000)
        got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return got["payload"]

    backend = MemoryBackend()
    backend.send_event("approved", {"ok": True})
    assert await backend.run(flow(body)) == {"ok": True}
    assert await backend.run(flow(body)) == {"ok": True}  # replayed, not waited for again
    assert backend.sleeps == [("nap", 10_800_000), ("alarm", 1000.0)]
    assert backend.events == {"approved": []}


async def test_a_wait_without_an_event_times_out_and_stays_timed_out() -> None:
    async def body(event: Any, step: Any) -> Any:
        return await step.wait_for_event("approval", "approved", timeout="1 hour")

    backend = MemoryBackend()
    with pytest.raises(WorkflowTimeoutError, match="timed out after 3600000ms"):
        await backend.run(flow(body))
    backend.send_event("approved", {"ok": True})
    with pytest.raises(WorkflowTimeoutError):
        await backend.run(flow(body))
