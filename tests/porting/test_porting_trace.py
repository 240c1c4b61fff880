"""The normalised trace: value and error normalisation, both engines' logs folded alike, and
a real Python port traced on the emulator (no npm needed)."""

from __future__ import annotations

from pathlib import Path

from workflows_emulator.porting.js_runner import Fault, RunSpec
from workflows_emulator.porting.py_runner import run_python
from workflows_emulator.porting.trace import (
    build_trace,
    from_emulator_events,
    from_subscribe_events,
    handler_view,
    normalise_error,
    normalise_value,
    trace_lines,
)

BANK = Path(__file__).resolve().parents[2] / "examples" / "porting" / "bank-transfer" / "python"


def test_values_take_one_form() -> None:
    assert normalise_value({"b": (1.0, 2.5), "a": None}) == {"a": None, "b": [1, 2.5]}
    assert list(normalise_value({"b": 1, "a": 2})) == ["a", "b"]
    assert normalise_value(True) is True


def test_errors_take_one_form() -> None:
    assert normalise_error(None) is None
    assert normalise_error({"name": "Exception", "message": "x"}) == {"name": "Error",
                                                                      "message": "x"}
    assert normalise_error({"name": "Error", "message": "NonRetryableError: no"}) == {
        "name": "NonRetryableError", "message": "no"}
    assert normalise_error({"name": "Error", "message": "WorkflowTimeoutError: late"}) == {
        "name": "WorkflowTimeoutError", "message": "late"}
    # only a plain Error's message is read for a name; "Error: x" names nothing more
    assert normalise_error({"name": "Error", "message": "Error: x"}) == {
        "name": "Error", "message": "Error: x"}
    assert normalise_error({"name": "TypeError", "message": "ValueError: y"}) == {
        "name": "TypeError", "message": "ValueError: y"}


JS_LOG = [
    {"type": "workflow_started"},
    {"type": "step_started", "stepName": "a-1"},
    {"type": "attempt_started", "stepName": "a-1", "attempt": 1},
    {"type": "attempt_completed", "stepName": "a-1", "attempt": 1},
    {"type": "step_completed", "stepName": "a-1", "output": {"x": 1}},
    {"type": "wait_started", "stepName": "w-1", "eventType": "go"},
    {"type": "wait_timed_out", "stepName": "w-1"},
    {"type": "rollback_started"},
    {"type": "rollback_step_started", "stepName": "a-1"},
    {"type": "rollback_attempt_errored", "stepName": "a-1", "attempt": 1,
     "error": {"name": "Error", "message": "busy"}},
    {"type": "rollback_attempt_completed", "stepName": "a-1", "attempt": 2},
    {"type": "rollback_step_completed", "stepName": "a-1"},
    {"type": "rollback_completed"},
    {"type": "workflow_errored"},
]
PY_LOG = [
    {"event": "WORKFLOW_START"},
    {"event": "STEP_START", "step": "a-1", "data": {"hasRollback": True}},
    {"event": "ATTEMPT_START", "step": "a-1", "attempt": 1},
    {"event": "ATTEMPT_SUCCESS", "step": "a-1", "attempt": 1},
    {"event": "STEP_SUCCESS", "step": "a-1", "data": {"output": {"x": 1.0}}},
    {"event": "WAIT_START", "step": "w-1"},
    {"event": "WAIT_TIMEOUT", "step": "w-1"},
    {"event": "ROLLBACK_START", "data": {"totalSteps": 1}},
    {"event": "ROLLBACK_STEP_START", "step": "a-1"},
    {"event": "ROLLBACK_ATTEMPT_FAILURE", "step": "a-1", "attempt": 1,
     "data": {"error": {"name": "Exception", "message": "busy"}}},
    {"event": "ROLLBACK_ATTEMPT_SUCCESS", "step": "a-1", "attempt": 2},
    {"event": "ROLLBACK_STEP_SUCCESS", "step": "a-1", "data": {"output": None}},
    {"event": "ROLLBACK_COMPLETE"},
    {"event": "WORKFLOW_FAILURE"},
]
TIMEOUT = {"name": "WorkflowTimeoutError", "message": "Execution timed out after 5ms"}


def test_both_logs_fold_to_the_same_trace() -> None:
    js_views = [handler_view("a-1", {"x": 1}, {"name": "Error",
                                               "message": "WorkflowTimeoutError: " + "Execution "
                                               "timed out after 5ms"})] * 2
    py_views = [handler_view("a-1", {"x": 1.0}, TIMEOUT)] * 2
    js = build_trace(from_subscribe_events(JS_LOG),
                     {"status": "errored", "output": None, "error": {
                         "name": "Error", "message": "WorkflowTimeoutError: Execution timed "
                         "out after 5ms"}}, js_views)
    py = build_trace(from_emulator_events(PY_LOG),
                     {"status": "errored", "error": TIMEOUT, "rollback": {}}, py_views)
    assert js == py
    assert js["steps"] == [
        {"step": "a-1", "kind": "do", "outcome": "success",
         "attempts": [{"outcome": "success", "error": None}], "output": {"x": 1}},
        {"step": "w-1", "kind": "waitForEvent", "outcome": "timeout", "attempts": []},
    ]
    handler = js["rollback"]["handlers"][0]
    assert handler["attempts"] == [{"outcome": "failure",
                                    "error": {"name": "Error", "message": "busy"}},
                                   {"outcome": "success", "error": None}]
    assert handler["saw"] == [{"output": {"x": 1}, "error": TIMEOUT}] * 2


def test_lines_show_each_part() -> None:
    trace = build_trace(from_emulator_events(PY_LOG), {"status": "errored", "error": TIMEOUT},
                        [handler_view("a-1", None, TIMEOUT)])
    lines = trace_lines(trace)
    assert lines[:3] == ["status: errored", "output: null",
                         "error: WorkflowTimeoutError: Execution timed out after 5ms"]
    assert "waitForEvent w-1: timeout" in lines
    assert "  handler a-1: success" in lines
    assert "      saw output=null error=WorkflowTimeoutError: Execution timed out after 5ms" \
        not in lines  # handlers' views are indented once under the handler
    assert "    saw output=null error=WorkflowTimeoutError: Execution timed out after 5ms" \
        in lines
    no_rollback = build_trace([], {"status": "complete", "output": 3}, [])
    assert trace_lines(no_rollback) == ["status: complete", "output: 3", "error: none",
                                        "rollback: none"]


def test_a_python_port_traced_on_the_emulator() -> None:
    spec = RunSpec("transfer", "t-1", {"from": "alice", "to": "bob", "amount": 5000},
                   faults=(Fault("debit source", "fail", times=1),))
    [result] = run_python(BANK, [spec])
    assert result.error is None and result.trace is not None
    trace = result.trace
    assert trace["status"] == "errored"
    assert trace["error"] == {"name": "NonRetryableError",
                              "message": "bob's bank refused 5000: over the limit of 1000"}
    debit = trace["steps"][1]
    assert debit["attempts"] == [
        {"outcome": "failure", "error": {"name": "Error",
                                         "message": "injected fault in debit source"}},
        {"outcome": "success", "error": None}]
    handlers = trace["rollback"]["handlers"]
    assert [h["step"] for h in handlers] == ["credit destination-1", "debit source-1",
                                             "reserve funds-1"]
    assert handlers[0]["saw"] == [{"output": None, "error": trace["error"]}]  # it never returned
    assert handlers[2]["saw"][0]["output"] == {"holdId": "hold-alice-5000"}


PAIRS = BANK.parents[1]


def test_events_and_terminate_on_the_emulator() -> None:
    approved, timed_out = run_python(PAIRS / "approval" / "python", [
        RunSpec("approval", "a-1", {"amount": 9},
                events=(("approval", {"approved": True, "by": "kim"}),)),
        RunSpec("approval", "a-2", {"amount": 9},
                faults=(Fault("wait for approval", "event-timeout"),)),
    ])
    assert approved.trace is not None and timed_out.trace is not None
    assert approved.trace["status"] == "complete" and approved.trace["rollback"] is None
    assert approved.trace["output"] == {"approvedBy": "kim", "captured": 9, "hold": "hold-9"}
    assert timed_out.trace["steps"][1] == {"step": "wait for approval-1",
                                           "kind": "waitForEvent", "outcome": "timeout",
                                           "attempts": []}
    assert timed_out.trace["error"]["name"] == "WorkflowTimeoutError"

    [terminated] = run_python(PAIRS / "terminate-rollback" / "python", [
        RunSpec("onboarding", "o-1", {"customer": "c1"}, terminate_at="wait for activation")])
    assert terminated.trace is not None
    assert terminated.trace["status"] == "terminated"
    handlers = terminated.trace["rollback"]["handlers"]
    assert [h["step"] for h in handlers] == ["issue card-1", "open account-1"]
    assert handlers[1]["saw"] == [{"output": {"account": "acct-c1"}, "error": {
        "name": "Error", "message": "Instance terminated during rollback"}}]
