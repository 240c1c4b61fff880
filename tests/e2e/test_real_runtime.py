"""workflows_saga under the real runtime: workerd (Pyodide 314.0.6) + wrangler 4.164's local
Workflows engine, offline. Each test starts an instance of ``SagaE2E`` (tests/e2e/worker) and
checks what its steps and rollback handlers recorded, and the instance's status.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def kinds(trace: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in trace if e["kind"] == kind]


def rolled_back(trace: list[dict[str, Any]]) -> list[str]:
    return [e["step"] for e in kinds(trace, "rollback")]


def test_handlers_run_in_reverse_start_order_with_outputs(worker: Any) -> None:
    iid = worker.start("sequential")
    status = worker.wait(iid)
    trace = worker.trace(iid)

    assert [e["step"] for e in kinds(trace, "forward")] == ["reserve", "charge", "ship", "fail"]
    # decorator keyword form (reserve), `.rollback` attach form (charge), call form (ship, fail)
    assert rolled_back(trace) == ["fail", "ship", "charge", "reserve"]
    by_step = {e["step"]: e for e in kinds(trace, "rollback")}
    assert by_step["fail"]["output"] is None  # the failed step's handler gets no output
    assert by_step["ship"]["output"] == "parcel-7"
    assert by_step["charge"]["output"] == {"charge": "c-1", "amount": 42}
    assert by_step["reserve"]["output"] == {"reservation": "r-1"}
    for name, entry in by_step.items():
        assert entry["step_name"] == f"{name}-1"
        # the error that failed run(): a KeyError, which keeps no Python type across JS
        assert entry["error"] == {"type": "StepError", "name": "KeyError", "message": "'boom'"}
        ctx = entry["ctx"]
        assert ctx["step"] == {"name": name, "count": 1}
        assert ctx["attempt"] == 1
        assert set(ctx["config"]) == {"retries", "timeout"}
    # the handler sees the forward step's resolved config, not its rollback_config
    assert by_step["fail"]["ctx"]["config"]["retries"] == {
        "limit": 0,
        "delay": 1,
        "backoff": "constant",
    }
    assert by_step["ship"]["ctx"]["config"]["retries"]["limit"] == 5

    assert status["status"] == "errored"
    assert status["error"]["name"] == "Error"
    assert "KeyError: 'boom'" in status["error"]["message"]
    assert status["__LOCAL_DEV_STEP_OUTPUTS"] == [
        {"reservation": "r-1"},
        {"charge": "c-1", "amount": 42},
        "parcel-7",
    ]


def test_concurrent_steps_roll_back_in_reverse_start_order(worker: Any) -> None:
    iid = worker.start("concurrent")
    assert worker.wait(iid)["status"] == "errored"
    trace = worker.trace(iid)

    assert [e["step"] for e in kinds(trace, "forward-start")] == ["slow", "fast"]
    assert [e["step"] for e in kinds(trace, "forward-end")] == ["fast", "slow"]
    assert rolled_back(trace) == ["fast", "slow"]  # not reverse completion order
    outputs = {e["step"]: e["output"] for e in kinds(trace, "rollback")}
    assert outputs == {"fast": "fast-done", "slow": "slow-done"}
    assert kinds(trace, "rollback")[0]["error"] == {
        "type": "StepError",
        "name": "RuntimeError",
        "message": "after the concurrent steps",
    }


def test_caught_errors_trigger_no_rollback_and_keep_their_types(worker: Any) -> None:
    iid = worker.start("caught")
    status = worker.wait(iid)
    trace = worker.trace(iid)

    assert status["status"] == "complete"
    assert status["output"] == {"finished": True}
    assert kinds(trace, "rollback") == []
    caught = {e["step"]: e["error"] for e in kinds(trace, "caught")}
    # every error out of step.do has .name and .message (issue 9 l), whatever its type
    assert caught["value"] == {"type": "ValueError", "name": "ValueError", "message": "bad value"}
    assert caught["key"] == {"type": "StepError", "name": "KeyError", "message": "'missing'"}
    assert caught["nonretryable"] == {
        "type": "NonRetryableError",
        "name": "NonRetryableError",
        "message": "stop now",
    }
    # workflows_saga.NonRetryableError in a step callback is not retried (limit was 3)
    assert len(kinds(trace, "attempt")) == 1


def test_successful_workflow_runs_no_rollback(worker: Any) -> None:
    iid = worker.start("success")
    status = worker.wait(iid)
    assert status["status"] == "complete"
    assert status["output"] == {"sum": 2}
    assert kinds(worker.trace(iid), "rollback") == []


def test_rollback_config_retries_a_failing_handler(worker: Any) -> None:
    iid = worker.start("retries")
    status = worker.wait(iid)
    trace = worker.trace(iid)

    attempts = kinds(trace, "rollback-attempt")
    assert len(attempts) == 3  # failed twice, succeeded on the third attempt (limit 3)
    assert {a["step"] for a in attempts} == {"charge"}
    assert [a["attempt"] for a in attempts] == [1, 1, 1]  # ctx.attempt is the forward one
    assert all(a["output"] == {"charge": "c-9"} for a in attempts)
    # ValueError keeps its type in the handler's error
    assert attempts[0]["error"] == {"type": "ValueError", "name": "ValueError",
                                    "message": "card declined"}
    assert rolled_back(trace) == ["charge", "first"]  # the chain went on after the retries
    assert status["status"] == "errored"
    assert "ValueError: card declined" in status["error"]["message"]


def test_nonretryable_error_in_handler_stops_retries_and_halts_chain(worker: Any) -> None:
    iid = worker.start("halt", mode="nonretryable")
    status = worker.wait(iid)
    trace = worker.trace(iid)

    assert len(kinds(trace, "rollback-attempt")) == 1  # rollback_config allowed 3 retries
    assert rolled_back(trace) == []  # "first" is never rolled back
    assert status["status"] == "errored"
    assert "ValueError: card declined" in status["error"]["message"]  # the original error


def test_exhausted_handler_halts_chain(worker: Any) -> None:
    iid = worker.start("halt", mode="exhausted")
    assert worker.wait(iid)["status"] == "errored"
    trace = worker.trace(iid)
    assert len(kinds(trace, "rollback-attempt")) == 2  # limit 1: two attempts
    assert rolled_back(trace) == []


def test_terminate_with_rollback_from_python_runs_handlers(worker: Any) -> None:
    iid = worker.start("terminate")
    worker.wait_trace(iid, lambda t: any(e.get("step") == "hold" for e in t))
    assert worker.status(iid)["status"] in {"running", "waiting"}

    assert worker.terminate(iid, rollback=True) == {"terminated": iid, "rollback": True}
    status = worker.wait(iid)
    trace = worker.wait_trace(iid, lambda t: kinds(t, "rollback"))

    assert status["status"] == "terminated"
    assert status["error"] is None
    assert rolled_back(trace) == ["hold"]
    entry = kinds(trace, "rollback")[0]
    assert entry["output"] == {"held": True}
    assert entry["error"]["message"] == "Instance terminated during rollback"
    assert entry["step_name"] == "hold-1"
    assert not any(e.get("step") == "after-wait" for e in trace)


def test_plain_terminate_runs_no_handlers(worker: Any) -> None:
    iid = worker.start("terminate")
    worker.wait_trace(iid, lambda t: any(e.get("step") == "hold" for e in t))
    worker.terminate(iid, rollback=False)
    assert worker.wait(iid)["status"] == "terminated"
    assert kinds(worker.trace(iid), "rollback") == []


def test_rollback_progress_is_visible_through_subscribe(worker: Any) -> None:
    iid = worker.start("halt", mode="nonretryable")
    status = worker.wait(iid)
    assert status["status"] == "errored"
    assert "rollback" not in status  # the local engine's status() says nothing about rollback
    events = [e for e in worker.events(iid) if e["type"].startswith("rollback_")]

    assert [e["type"] for e in events] == [
        "rollback_started",
        "rollback_step_started",
        "rollback_attempt_started",
        "rollback_attempt_errored",
        "rollback_step_errored",
        "rollback_errored",
    ]
    started = events[1]
    assert started["stepName"] == "charge-1"
    # the handler's rollback_config, merged over the defaults (not the forward step's config)
    assert started["config"] == {
        "retries": {"limit": 3, "delay": 10, "backoff": "constant"},
        "timeout": "10 minutes",
    }
    error = events[3]["error"]
    assert error["name"] == "WorkflowFatalError"
    assert "NonRetryableError" in error["message"]
    assert "refund refused" in error["message"]
