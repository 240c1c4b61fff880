"""Each modifier of ``cloudflare:test`` changes what Cloudflare's engine changes, and nothing
more: the log, the attempts, the virtual clock and the callback calls show it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import Emulator, EmulatorError
from workflows_emulator.introspection import introspect_workflow, introspect_workflow_instance
from workflows_saga import NonRetryableError, WorkflowEntrypoint, WorkflowTimeoutError

REPO = Path(__file__).resolve().parents[2]
calls: list[str] = []


class Flow(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.sleep("nap", "1 hour")
        got = await step.do("fetch", lambda: calls.append("fetch") or "real",
                            config={"retries": {"limit": 3, "delay": "1 minute"}})
        try:
            decision = await step.wait_for_event("review", "decision", timeout="1 day")
        except WorkflowTimeoutError:
            decision = {"payload": "timed out"}
        return [got, decision["payload"]]


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def _events(inst: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in inst.events() if e["event"] == kind]


async def test_without_modifiers_the_run_takes_its_time() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Flow, name="flow")
        start = emu.clock.now_ms()
        inst = await wf.create(id="plain")
        await inst.wait(until={"waiting"})
        await inst.send_event("decision", "yes")
        assert (await inst.wait())["output"] == ["real", "yes"]
        assert emu.clock.now_ms() - start >= 3_600_000  # the hour's sleep passed


async def test_disable_sleeps_ends_sleeps_without_moving_time() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Flow, name="flow")
        start = emu.clock.now_ms()
        async with introspect_workflow_instance(wf, "i") as instance:
            async def configure(m: Any) -> None:
                await m.disable_sleeps()
                await m.mock_event({"type": "decision", "payload": "mocked"})

            await instance.modify(configure)
            inst = await wf.create(id="i")
            await instance.wait_for_status("complete")
            assert await instance.get_output() == ["real", "mocked"]
            assert emu.clock.now_ms() - start < 1000
            assert len(_events(inst, "SLEEP_COMPLETE")) == 1  # still logged


async def test_mock_step_error_fails_the_next_attempts_then_the_callback_runs() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Flow, name="flow")
        async with introspect_workflow_instance(wf, "i") as instance:
            async def configure(m: Any) -> None:
                await m.disable_sleeps()
                await m.mock_step_error({"name": "fetch"}, ValueError("flaky"), times=2)
                await m.force_event_timeout({"name": "review"})

            await instance.modify(configure)
            inst = await wf.create(id="i")
            assert await instance.wait_for_step_result({"name": "fetch"}) == "real"
            failures = _events(inst, "ATTEMPT_FAILURE")
            assert [(f["attempt"], f["data"]["error"]) for f in failures] == [
                (1, {"name": "ValueError", "message": "flaky"}),
                (2, {"name": "ValueError", "message": "flaky"})]
            assert calls == ["fetch"]  # only the third attempt ran the callback
            await instance.wait_for_status("complete")
            assert await instance.get_output() == ["real", "timed out"]


async def test_retry_delays_wait_unless_disabled() -> None:
    async def retried(disabled: bool) -> float:
        async with Emulator() as emu:
            wf = emu.workflow(Flow, name="flow")
            async with introspect_workflow_instance(wf, "i") as instance:
                async def configure(m: Any) -> None:
                    await m.disable_sleeps()
                    await m.mock_step_error({"name": "fetch"}, ValueError("flaky"), times=1)
                    if disabled:
                        await m.disable_retry_delays([{"name": "fetch"}])

                await instance.modify(configure)
                start = emu.clock.now_ms()
                await wf.create(id="i")
                await instance.wait_for_step_result({"name": "fetch"})
                return emu.clock.now_ms() - start

    assert await retried(disabled=False) >= 60_000
    assert await retried(disabled=True) < 1000


async def test_a_persistent_mock_error_exhausts_the_retries() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Flow, name="flow")
        async with introspect_workflow_instance(wf, "i") as instance:
            async def configure(m: Any) -> None:
                await m.disable_sleeps()
                await m.mock_step_error("fetch", NonRetryableError("gone"))

            await instance.modify(configure)
            await wf.create(id="i")
            with pytest.raises(NonRetryableError, match="gone"):
                await instance.wait_for_step_result({"name": "fetch"})
            await instance.wait_for_status("errored")
            assert await instance.get_error() == {"name": "NonRetryableError", "message": "gone"}
            assert calls == []


async def test_force_step_timeout_times_out_the_attempt() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Flow, name="flow")
        async with introspect_workflow_instance(wf, "i") as instance:
            async def configure(m: Any) -> None:
                await m.disable_sleeps()
                await m.disable_retry_delays()
                await m.force_step_timeout({"name": "fetch"}, 1)

            await instance.modify(configure)
            inst = await wf.create(id="i")
            assert await instance.wait_for_step_result({"name": "fetch"}) == "real"
            (failure,) = _events(inst, "ATTEMPT_FAILURE")
            assert failure["data"]["error"]["name"] == "WorkflowTimeoutError"
            assert failure["data"]["error"]["message"].startswith("Execution timed out")


async def test_conflicting_mocks_are_refused_as_cloudflare_refuses_them() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Flow, name="flow")
        instance = await introspect_workflow_instance(wf, "i")
        await instance.modify(lambda m: m.mock_step_result({"name": "fetch"}, 1))
        with pytest.raises(ValueError, match="Trying to mock step 'fetch' multiple times!"):
            await instance.modify(lambda m: m.mock_step_result({"name": "fetch"}, 2))
        with pytest.raises(ValueError, match="Trying to mock error on step 'fetch' after "
                           "mocking its result!"):
            await instance.modify(lambda m: m.mock_step_error({"name": "fetch"}, ValueError()))
        with pytest.raises(TypeError, match="step index must be a positive integer"):
            await instance.modify(lambda m: m.disable_sleeps([{"name": "nap", "index": -1}]))


async def test_waiting_on_an_instance_not_created_says_so() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Flow, name="flow")
        instance = await introspect_workflow_instance(wf, "later")
        with pytest.raises(EmulatorError, match="has not been created"):
            await instance.wait_for_step_result({"name": "fetch"})


async def test_a_workflow_session_applies_to_new_instances_only_and_dispose_deletes() -> None:
    async with Emulator() as emu:
        wf = emu.workflow(Flow, name="flow")
        before = await wf.create(id="before")
        async with introspect_workflow(wf) as introspector:
            await introspector.modify_all(lambda m: m.mock_step_result({"name": "fetch"}, "m"))
            await wf.create_batch([{"id": "a"}, {"id": "b"}])
            taken = await introspector.get()
            assert [i.id for i in taken] == ["a", "b"]
            for instance in taken:
                assert await instance.wait_for_step_result({"name": "fetch"}) == "m"
        # disposed: the session's instances are gone, the one made before is untouched
        assert [i["id"] for i in await wf.list()] == ["before"]
        await before.terminate()


def test_the_ported_vitest_example_passes_under_pytest() -> None:
    """workers-sdk's vitest tests of its Workflows example, ported by hand, in examples/."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(REPO / "examples" / "testing-moderator")],
        capture_output=True, text=True, timeout=300, cwd=REPO / "examples" / "testing-moderator")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 passed" in result.stdout
