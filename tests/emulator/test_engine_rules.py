"""Step identity, caching and replay, retries, timeouts, output limits, status and the log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import DurableObjectNamespace, DurableObjectStorage, Emulator, EmulatorError
from workflows_saga import NonRetryableError, StepContext, WorkflowEntrypoint


def make(body: Any) -> type:
    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return await body(event, step)

    return Flow


async def test_retries_limit_counts_retries_and_backoff(emu: Emulator) -> None:
    attempts: list[int] = []

    async def body(event: Any, step: Any) -> Any:
        def flaky(ctx: StepContext) -> None:
            attempts.append(ctx.attempt)
            raise RuntimeError("down")

        await step.do("s", flaky, config={"retries": {"limit": 3, "delay": "2 seconds"}})

    inst = await emu.workflow(make(body), name="f").create()
    status = await inst.wait(timeout=10)
    assert attempts == [1, 2, 3, 4]
    delays = [e["data"]["retryDelayMs"] for e in inst.events()
              if e["event"] == "ATTEMPT_FAILURE" and "retryDelayMs" in e["data"]]
    assert delays == [2000, 4000, 8000]
    assert status["error"] == {"name": "RuntimeError", "message": "down"}


async def test_default_retries_are_five_with_10s_exponential(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        await step.do("s", lambda: (_ for _ in ()).throw(RuntimeError("x")))

    inst = await emu.workflow(make(body), name="f").create()
    t0 = emu.clock.now_ms()
    await inst.wait(timeout=10)
    starts = [e for e in inst.events() if e["event"] == "ATTEMPT_START"]
    assert len(starts) == 6
    assert emu.clock.now_ms() - t0 == 10_000 * (1 + 2 + 4 + 8 + 16)


async def test_non_retryable_error_stops_retries(emu: Emulator) -> None:
    attempts = 0

    async def body(event: Any, step: Any) -> Any:
        def fatal() -> None:
            nonlocal attempts
            attempts += 1
            raise NonRetryableError("bad card")

        await step.do("s", fatal)

    status = await (await emu.workflow(make(body), name="f").create()).wait(timeout=10)
    assert attempts == 1
    assert status["error"] == {"name": "NonRetryableError", "message": "bad card"}


async def test_attempt_timeout_is_per_attempt_on_the_virtual_clock(emu: Emulator) -> None:
    attempts: list[int] = []

    async def body(event: Any, step: Any) -> Any:
        async def hangs(ctx: StepContext) -> str:
            attempts.append(ctx.attempt)
            if ctx.attempt == 1:
                await asyncio.Event().wait()
            return "second try"

        return await step.do("s", hangs, config={"timeout": "30 seconds",
                                                  "retries": {"limit": 1, "delay": 0}})

    inst = await emu.workflow(make(body), name="f").create()
    await emu.settle()
    assert (await inst.status())["status"] == "running"
    await emu.advance("30 seconds")  # a running callback is never cut short by wait() alone
    status = await inst.wait(timeout=10)
    assert status["output"] == "second try" and attempts == [1, 2]
    failure = next(e for e in inst.events() if e["event"] == "ATTEMPT_FAILURE")
    assert failure["data"]["error"] == {"name": "WorkflowTimeoutError",
                                        "message": "Execution timed out after 30000ms"}


async def test_dynamic_delay_function(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        def flaky(ctx: StepContext) -> int:
            if ctx.attempt < 3:
                raise RuntimeError("again")
            return ctx.attempt

        def delay(info: dict[str, Any]) -> str:
            return f"{info['ctx']['attempt'] * 7} seconds"

        constant = await step.do("s", flaky, config={"retries": {
            "limit": 5, "delay": delay, "backoff": "constant"}})
        # the backoff still applies to what the function returns (as Cloudflare's engine does)
        backed_off = await step.do("s", flaky, config={"retries": {"limit": 5, "delay": delay}})
        return [constant, backed_off]

    inst = await emu.workflow(make(body), name="f").create()
    assert (await inst.wait(timeout=10))["output"] == [3, 3]
    delays = [e["data"]["retryDelayMs"] for e in inst.events() if e["event"] == "ATTEMPT_FAILURE"]
    assert delays == [7000, 14000, 7000, 28000]


@pytest.mark.parametrize(
    ("delay", "message"),
    [(lambda info: "soon", 'The delay function for step "s-1" returned an invalid delay value '
      '(expected a number of ms or a duration string like "30 seconds")'),
     (lambda info: 1 / 0, 'The delay function for step "s-1" threw an error: division by zero')],
)
async def test_a_bad_delay_function_fails_the_step_for_good(
    emu: Emulator, delay: Any, message: str
) -> None:
    attempts: list[int] = []

    async def body(event: Any, step: Any) -> Any:
        def flaky(ctx: StepContext) -> None:
            attempts.append(ctx.attempt)
            raise RuntimeError("again")

        await step.do("s", flaky, config={"retries": {"limit": 5, "delay": delay}})

    status = await (await emu.workflow(make(body), name="f").create()).wait(timeout=10)
    assert attempts == [1]
    assert status["error"] == {"name": "NonRetryableDelayError", "message": message}


async def test_output_must_be_json_and_at_most_1_mib(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        try:
            await step.do("big", lambda: "x" * (1 << 20))
        except Exception as exc:
            return [type(exc).__name__, str(exc)]

    out = (await (await emu.workflow(make(body), name="f").create()).wait(timeout=10))["output"]
    assert out == ["StepError",
                   "WorkflowInternalError: Step big-1 output is too large. Maximum allowed size "
                   "is 1MiB."]


async def test_unserialisable_output_aborts_without_rollback(emu: Emulator) -> None:
    undone: list[int] = []

    async def body(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1, rollback=lambda rb: undone.append(1))
        await step.do("bad", lambda: object())

    status = await (await emu.workflow(make(body), name="f").create()).wait(timeout=10)
    assert status["status"] == "errored" and status["rollback"] is None and undone == []
    assert status["error"] == {
        "name": "WorkflowFatalError",
        "message": 'The execution of the Workflow instance was terminated, as the step "bad" '
        "returned a value which is not serialisable",
    }


async def test_step_identity_is_name_plus_count(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        out = []
        for _ in range(3):
            out.append(await step.do("same", lambda ctx: ctx.count))
        await step.sleep("same", 10)  # sleeps count separately
        out.append(await step.do("same", lambda ctx: ctx.count))
        return out

    inst = await emu.workflow(make(body), name="f").create()
    assert (await inst.wait(timeout=10))["output"] == [1, 2, 3, 4]
    assert [r.key for r in inst.steps()] == ["do:1:same", "do:2:same", "do:3:same",
                                             "sleep:1:same", "do:4:same"]


async def test_nested_step_inside_a_step(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        async def outer() -> str:
            inner = await step.do("inner", lambda: "in")
            return f"out({inner})"

        return await step.do("outer", outer)

    inst = await emu.workflow(make(body), name="f").create()
    assert (await inst.wait(timeout=10))["output"] == "out(in)"


async def test_replay_returns_cached_outputs_and_reraises_cached_errors(tmp_path: Path) -> None:
    calls: list[str] = []

    async def body(event: Any, step: Any) -> Any:
        a = await step.do("a", lambda: calls.append("a") or "A")
        try:
            await step.do("b", lambda: calls.append("b") or (_ for _ in ()).throw(
                ValueError("b failed")), config={"retries": {"limit": 0, "delay": 0}})
        except ValueError as exc:
            caught = str(exc)
        await step.sleep("nap", "1 day")
        return [a, caught]

    async with Emulator(tmp_path / "s") as emu:
        inst = await emu.workflow(make(body), name="f").create(id="r")
        await inst.wait(until={"waiting"}, timeout=10)
    assert calls == ["a", "b"]
    async with Emulator(tmp_path / "s") as emu:  # a new process would do the same
        inst = await emu.workflow(make(body), name="f").get("r")
        status = await inst.wait(timeout=10)
    assert calls == ["a", "b"]  # replay ran no callback again
    assert status["output"] == ["A", "b failed"]


async def test_status_shape_and_event_log(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        return await step.do("s", lambda: {"ok": True})

    inst = await emu.workflow(make(body), name="f").create(id="x")
    status = await inst.wait(timeout=10)
    assert status == {"status": "complete", "error": None, "output": {"ok": True},
                      "rollback": None}
    assert [e["event"] for e in inst.events()] == [
        "WORKFLOW_QUEUED", "WORKFLOW_START", "STEP_START", "ATTEMPT_START", "ATTEMPT_SUCCESS",
        "STEP_SUCCESS", "WORKFLOW_SUCCESS"]


async def test_event_dict_given_to_run(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        return {k: type(v).__name__ for k, v in event.items()} | {"payload": event["payload"]}

    inst = await emu.workflow(make(body), name="f").create(id="e", params={"n": 1})
    out = (await inst.wait(timeout=10))["output"]
    assert out == {"payload": {"n": 1}, "timestamp": "datetime", "instanceId": "str",
                   "workflowName": "str"}


async def test_virtual_clock_makes_long_waits_free(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        await step.do("s", lambda: (_ for _ in ()).throw(RuntimeError("x")),
                      config={"retries": {"limit": 3, "delay": "1 day"}})

    started = time.perf_counter()
    await (await emu.workflow(make(body), name="f").create()).wait(timeout=10)
    assert time.perf_counter() - started < 5  # 7 virtual days


def test_durable_object_storage_kv_sql_transactions_alarm(tmp_path: Path) -> None:
    storage = DurableObjectStorage(tmp_path / "do.sqlite")
    storage.put("a", {"x": 1})
    storage.put("b", [1, 2])
    assert storage.get("a") == {"x": 1} and storage.get("missing", 7) == 7
    assert storage.list() == {"a": {"x": 1}, "b": [1, 2]}
    assert storage.delete("a") and not storage.delete("a")
    storage.sql.exec("CREATE TABLE t (n INTEGER)")
    with pytest.raises(RuntimeError), storage.transaction():
        storage.sql.exec("INSERT INTO t VALUES (1)")
        storage.put("c", 3)
        raise RuntimeError("abort the transaction")
    assert storage.sql.exec("SELECT count(*) AS n FROM t").one() == {"n": 0}
    assert storage.get("c") is None
    with storage.transaction():
        storage.sql.exec("INSERT INTO t VALUES (?)", 5)
    assert storage.sql.exec("SELECT n FROM t").to_array() == [{"n": 5}]
    assert storage.get_alarm() is None
    storage.set_alarm(1234.0)
    assert storage.get_alarm() == 1234.0
    storage.delete_alarm()
    assert storage.get_alarm() is None
    mode = storage.sql.exec("PRAGMA journal_mode").one()
    assert mode == {"journal_mode": "wal"}
    storage.close()
    reopened = DurableObjectStorage(tmp_path / "do.sqlite")
    assert reopened.get("b") == [1, 2]
    reopened.close()


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", ".hidden", "x" * 101, "a\x00b"])
def test_object_names_cannot_escape_the_state_directory(tmp_path: Path, name: str) -> None:
    ns = DurableObjectNamespace(tmp_path / "objs")
    with pytest.raises(EmulatorError, match="invalid object name"):
        ns.path_for(name)


def test_state_path_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "state.db"
    f.write_text("not a dir")
    with pytest.raises(EmulatorError, match="is a file"):
        Emulator(f)


async def test_close_with_drain_lets_running_callbacks_finish(tmp_path: Path) -> None:
    ran: list[str] = []

    class Flow(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            async def slow() -> str:
                ran.append("slow-start")
                await asyncio.sleep(0.3)  # real I/O, still running when close() is called
                ran.append("slow-end")
                return "slow"

            await step.do("slow", slow)
            await step.do("next", lambda: ran.append("next") or "next")
            return "done"

    emu = Emulator(tmp_path / "s", clock="real")
    async with emu:
        await emu.workflow(Flow, name="f").create(id="d")
        while "slow-start" not in ran:
            await asyncio.sleep(0.01)
        await emu.close(drain_timeout=5)
    assert ran == ["slow-start", "slow-end"]  # finished, and nothing new started
    async with Emulator(tmp_path / "s", clock="real") as emu2:
        inst = await emu2.workflow(Flow, name="f").get("d")
        assert (await inst.wait(timeout=10))["output"] == "done"
        attempts = [e for e in inst.events() if e["event"] == "ATTEMPT_START"]
    assert ran == ["slow-start", "slow-end", "next"]  # "slow" was not run again
    assert len(attempts) == 2


async def test_message_prefixed_non_retryable_is_not_retried(emu: Emulator) -> None:
    attempts = 0

    async def body(event: Any, step: Any) -> Any:
        def fatal() -> None:
            nonlocal attempts
            attempts += 1
            raise RuntimeError("NonRetryableError: card stolen")

        await step.do("s", fatal)

    status = await (await emu.workflow(make(body), name="f").create()).wait(timeout=10)
    assert attempts == 1
    assert status["error"] == {"name": "NonRetryableError", "message": "card stolen"}


async def test_engine_refusals_carry_cloudflares_error_names(emu: Emulator) -> None:
    async def body(event: Any, step: Any) -> Any:
        for i in range(3):
            await step.do(f"s{i}", lambda: 1)

    wf = emu.workflow(make(body), name="f", step_limit=2)
    status = await (await wf.create()).wait(timeout=10)
    assert status["error"] == {
        "name": "WorkflowFatalError",
        "message": "The limit of 2 steps has been reached. This limit can be changed in your "
        "worker configuration.",
    }
