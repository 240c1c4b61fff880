"""`assert_step_trace` and `assert_rolled_back`: they pass on the truth, and their failures
show expected and actual side by side with the first difference marked."""

from __future__ import annotations

import pytest

from workflows_emulator import Emulator, Instance
from workflows_emulator.testing import assert_rolled_back, assert_step_trace
from workflows_saga import NonRetryableError, WorkflowEntrypoint

undone: list[str] = []


class Transfer(WorkflowEntrypoint):
    """reserve, debit, a sleep, credit (fails if asked); each do step has a handler."""

    async def run(self, event, step):
        fail = event["payload"].get("fail")

        def undo(name):
            def handler(rb):
                if name == fail.get("handler"):
                    raise NonRetryableError(f"cannot undo {name}")
                undone.append(name)
            return handler

        @step.do("reserve", rollback=undo("reserve"))
        async def reserve():
            return "hold-1"

        @step.do("debit", rollback=undo("debit"), rollback_config={"retries": {"limit": 0, "delay": 0}})
        async def debit():
            return "deb-1"

        await reserve()
        await debit()
        await step.sleep("settle", "1 minute")

        @step.do("credit", rollback=undo("credit"),
                 config={"retries": {"limit": 1, "delay": "1 second"}})
        async def credit():
            if fail.get("credit"):
                raise ValueError("account closed")
            return "cre-1"

        return await credit()


async def run(emu: Emulator, **fail: str) -> Instance:
    undone.clear()
    inst = await emu.workflow(Transfer, name="transfer").create(id="t-1",
                                                                   params={"fail": fail})
    await inst.wait()
    return inst


async def test_the_truth_passes(workflows_emulator: Emulator) -> None:
    inst = await run(workflows_emulator, credit="yes")
    assert_step_trace(inst, ["reserve", "debit", "settle", "credit"])
    assert_step_trace(inst, ["reserve-1", {"name": "debit", "state": "success"},
                             {"kind": "sleep"}, {"name": "credit", "attempts": 2,
                                                 "state": "failure"}])
    assert_rolled_back(inst, ["credit", "debit", "reserve"])
    assert_rolled_back(inst, ["credit-1", "debit", "reserve"],
                       outcomes=["success", "success", "success"], outcome="complete")
    assert undone == ["credit", "debit", "reserve"]


async def test_a_different_trace_is_shown_side_by_side(workflows_emulator: Emulator) -> None:
    inst = await run(workflows_emulator)
    with pytest.raises(AssertionError) as caught:
        assert_step_trace(inst, ["reserve", "credit", "debit"])
    assert str(caught.value).splitlines()[:6] == [
        "the step trace of instance 't-1' of workflow 'transfer' is not the one expected: "
        "first difference at #2 (expected 'credit', got 'debit')",
        "     #  expected  actual",
        "     1  reserve   reserve",
        "  >  2  credit    debit",
        "  >  3  debit     settle",
        "  >  4  -         credit",
    ]
    assert str(caught.value).splitlines()[6].startswith("the instance: status 'complete'")


async def test_fields_are_compared_only_where_given(workflows_emulator: Emulator) -> None:
    inst = await run(workflows_emulator, credit="yes")
    with pytest.raises(AssertionError) as caught:
        assert_step_trace(inst, ["reserve", "debit", "settle",
                                 {"name": "credit", "state": "success"}])
    lines = str(caught.value).splitlines()
    assert lines[0].endswith("first difference at #4 (expected \"credit (state='success')\", "
                             "got \"credit (state='failure')\")")
    assert lines[5] == "  >  4  credit (state='success')  credit (state='failure')"


async def test_a_rollback_in_another_order_names_the_first_difference(
        workflows_emulator: Emulator) -> None:
    inst = await run(workflows_emulator, credit="yes")
    with pytest.raises(AssertionError) as caught:
        assert_rolled_back(inst, ["credit", "reserve", "debit"])
    lines = str(caught.value).splitlines()
    assert lines[0] == ("the rollback of instance 't-1' of workflow 'transfer' did not run the "
                        "handlers expected: first difference at #2 (expected 'reserve', got "
                        "'debit')")
    assert lines[2:5] == ["     1  credit    credit", "  >  2  reserve   debit",
                          "  >  3  debit     reserve"]


async def test_a_failed_handler_halts_the_chain_and_its_outcome_is_checked(
        workflows_emulator: Emulator) -> None:
    inst = await run(workflows_emulator, credit="yes", handler="debit")
    assert_rolled_back(inst, ["credit", "debit"], outcomes={"debit": "failure"})
    with pytest.raises(AssertionError) as caught:
        assert_rolled_back(inst, ["credit", "debit", "reserve"],
                           outcomes=["success", "success", "success"])
    lines = str(caught.value).splitlines()
    assert "first difference at #2 (expected 'debit (success)', got 'debit (failure)')" in lines[0]
    assert lines[4] == "  >  3  reserve (success)  -"
    with pytest.raises(AssertionError, match=r"ended 'failed', expected 'complete' \(error: "
                       r"NonRetryableError: cannot undo debit\)"):
        assert_rolled_back(inst, ["credit", "debit"])


async def test_no_rollback_is_said_plainly(workflows_emulator: Emulator) -> None:
    inst = await run(workflows_emulator)
    assert_rolled_back(inst, [])
    with pytest.raises(AssertionError) as caught:
        assert_rolled_back(inst, ["credit"])
    assert "first difference at #1 (expected 'credit', got nothing more)" in str(caught.value)
    assert "status 'complete'" in str(caught.value)


async def test_bad_expectations_are_refused(workflows_emulator: Emulator) -> None:
    inst = await run(workflows_emulator, credit="yes")
    with pytest.raises(ValueError, match="as long as steps"):
        assert_rolled_back(inst, ["credit", "debit"], outcomes=["success"])
    with pytest.raises(ValueError, match="one of"):
        assert_rolled_back(inst, ["credit"], outcomes={"credit": "ok"})
    with pytest.raises(ValueError, match="cannot compare a step's 'colour'"):
        assert_step_trace(inst, [{"name": "reserve", "colour": "red"}])
    with pytest.raises(TypeError, match="expected an instance"):
        assert_step_trace("t-1", [])
