"""Crash tests: a real child process dies mid-way; a new process resumes the same state.

Each test runs ``crash_programs/saga_program.py`` twice with ``sys.executable``: the
``first`` process dies on purpose (``os._exit(1)`` or SIGKILL) at one point of the
instance's life; the ``resume`` process opens the same state directory, registers the same
workflow and calls ``wait()``. Every step attempt and rollback handler call appends a line
(with the pid and phase) to a side-effects file, so the tests assert exactly what ran once
and what ran again (issue 2 "durability", issue 3 "restart-survival").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROGRAM = Path(__file__).parent / "crash_programs" / "saga_program.py"
HOUR = 3_600_000
MINUTE = 60_000


class Run:
    def __init__(self, tmp_path: Path, scenario: str) -> None:
        self.state = tmp_path / "state"
        self.effects_file = tmp_path / "side-effects.jsonl"
        self.scenario = scenario

    def phase(self, phase: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop("PYTHONHASHSEED", None)
        return subprocess.run(
            [sys.executable, str(PROGRAM), str(self.state), str(self.effects_file),
             self.scenario, phase],
            capture_output=True, text=True, timeout=90, env=env, check=False,
        )

    def crash(self, expected_rc: int = 1) -> None:
        proc = self.phase("first")
        assert proc.returncode == expected_rc, (
            f"the first process should have died with {expected_rc}, got {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )

    def resume(self) -> dict[str, Any]:
        proc = self.phase("resume")
        assert proc.returncode == 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def effects(self) -> list[dict[str, Any]]:
        if not self.effects_file.exists():
            return []
        return [json.loads(line) for line in self.effects_file.read_text().splitlines()]

    def summary(self) -> list[str]:
        """``"first fwd a 1"``, ``"resume rb b"``... in the order they happened."""
        out = []
        for e in self.effects():
            if e["kind"] == "fwd":
                out.append(f"{e['phase']} fwd {e['step']} {e['attempt']}")
            else:
                out.append(f"{e['phase']} rb {e['step']}")
        return out


def log_events(report: dict[str, Any], *names: str) -> list[dict[str, Any]]:
    return [e for e in report["events"] if e["event"] in names]


def ts(report: dict[str, Any], event: str, step: str | None = None) -> float:
    for e in report["events"]:
        if e["event"] == event and (step is None or e["step"] == step):
            return float(e["timestamp"])
    raise AssertionError(f"no {event} {step}")


def test_crash_in_the_middle_of_a_forward_step(tmp_path: Path) -> None:
    run = Run(tmp_path, "forward")
    run.crash()
    assert run.summary() == ["first fwd a 1", "first fwd b 1"]

    report = run.resume()
    assert report["status"] == {
        "status": "complete", "error": None, "output": ["out-a", "out-b", "out-c"],
        "rollback": None,
    }
    # a completed before the crash: never re-run. b's interrupted attempt counts as
    # failed and is retried (attempt 2). c runs once.
    assert run.summary() == [
        "first fwd a 1", "first fwd b 1",
        "resume fwd b 2", "resume fwd c 1",
    ]
    failures = log_events(report, "ATTEMPT_FAILURE")
    assert [(f["step"], f["attempt"]) for f in failures] == [("b-1", 1)]
    assert failures[0]["data"]["error"] == {
        "name": "WorkflowInternalError",
        "message": "Attempt failed due to internal workflows error",
    }
    assert [e["step"] for e in log_events(report, "STEP_START")] == ["a-1", "b-1", "c-1"]
    assert not log_events(report, "ROLLBACK_START")


def test_crash_in_the_last_allowed_attempt_fails_the_step_and_rolls_back(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, "forward-last-attempt")
    run.crash()
    report = run.resume()
    status = report["status"]
    assert status["status"] == "errored"
    assert status["error"] == {
        "name": "WorkflowInternalError",
        "message": "Attempt failed due to internal workflows error",
    }
    assert status["rollback"] == {"outcome": "complete", "error": None}
    # b had no retry left: it is not run again; its handler runs with output None
    assert run.summary() == [
        "first fwd a 1", "first fwd b 1",
        "resume rb b", "resume rb a",
    ]
    rb = [e for e in run.effects() if e["kind"] == "rb"]
    assert rb[0]["output"] is None
    assert rb[1]["output"] == "out-a"


def test_crash_in_the_middle_of_the_rollback_phase(tmp_path: Path) -> None:
    run = Run(tmp_path, "rollback")
    run.crash()
    assert run.summary() == [
        "first fwd a 1", "first fwd b 1", "first fwd c 1", "first fwd d 1",
        "first rb c", "first rb b",
    ]

    report = run.resume()
    status = report["status"]
    assert status["status"] == "errored"
    assert status["error"] == {"name": "NonRetryableError", "message": "d failed"}
    assert status["rollback"] == {"outcome": "complete", "error": None}
    # forward steps are not re-run (run() is only replayed to rebuild the handlers);
    # c's handler completed: not re-run; b's was interrupted: runs again; then a.
    assert run.summary() == [
        "first fwd a 1", "first fwd b 1", "first fwd c 1", "first fwd d 1",
        "first rb c", "first rb b",
        "resume rb b", "resume rb a",
    ]
    rb_b = [e for e in run.effects() if e["kind"] == "rb" and e["step"] == "b"]
    for call in rb_b:
        assert call["output"] == "out-b"
        assert call["step_name"] == "b-1"
        assert call["error"].endswith("d failed")
    rb_a = next(e for e in run.effects() if e["kind"] == "rb" and e["step"] == "a")
    assert rb_a["output"] == "out-a"
    # one ROLLBACK_START for the whole phase; b's first attempt recorded as failed
    assert len(log_events(report, "ROLLBACK_START")) == 1
    assert len(log_events(report, "ROLLBACK_COMPLETE")) == 1
    rb_failures = log_events(report, "ROLLBACK_ATTEMPT_FAILURE")
    assert [(f["step"], f["attempt"]) for f in rb_failures] == [("b-1", 1)]
    assert rb_failures[0]["data"]["error"]["name"] == "WorkflowInternalError"
    names = [e["event"] for e in report["events"]]
    assert names[-1] == "WORKFLOW_FAILURE"
    assert names.count("WORKFLOW_FAILURE") == 1


def test_crash_while_sleeping(tmp_path: Path) -> None:
    run = Run(tmp_path, "sleep")
    run.crash(expected_rc=-signal.SIGKILL)
    assert run.summary() == ["first fwd a 1"]

    report = run.resume()
    assert report["status"]["status"] == "complete"
    assert report["status"]["output"] == ["out-a", "out-b"]
    assert run.summary() == ["first fwd a 1", "resume fwd b 1"]
    # the sleep kept its original deadline: it did not start over in the new process
    assert len(log_events(report, "SLEEP_START")) == 1
    assert ts(report, "SLEEP_COMPLETE", "nap-1") - ts(report, "SLEEP_START", "nap-1") == HOUR


def test_crash_while_waiting_for_an_event(tmp_path: Path) -> None:
    run = Run(tmp_path, "event")
    run.crash()
    assert run.summary() == ["first fwd a 1"]

    report = run.resume()  # sends the event, then waits
    assert report["status"] == {
        "status": "complete", "error": None, "output": {"approved_by": "bob"},
        "rollback": None,
    }
    assert run.summary() == ["first fwd a 1", "resume fwd b 1"]
    assert len(log_events(report, "WAIT_START")) == 1


def test_crash_while_waiting_then_the_wait_times_out_at_its_original_deadline(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, "event-timeout")
    run.crash()
    report = run.resume()  # no event: the wait times out
    status = report["status"]
    assert status["status"] == "errored"
    assert status["error"]["name"] == "WorkflowTimeoutError"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert run.summary() == ["first fwd a 1", "resume rb a"]
    assert ts(report, "WAIT_TIMEOUT") - ts(report, "WAIT_START") == HOUR


def test_event_sent_before_a_crash_stays_buffered(tmp_path: Path) -> None:
    run = Run(tmp_path, "event-buffered")
    run.crash()
    report = run.resume()
    assert report["status"]["status"] == "complete"
    assert report["status"]["output"] == {"payload": {"by": "carol"}, "type": "approved"}
    assert run.summary() == ["first fwd a 1"]


def test_crash_while_paused(tmp_path: Path) -> None:
    run = Run(tmp_path, "paused")
    run.crash()
    assert run.summary() == ["first fwd a 1"]

    report = run.resume()
    # the new process finds it paused, does not start it, and time does not move it
    assert report["status_on_reopen"] == "paused"
    assert report["wait_while_paused"] != "returned"
    assert report["status_after_advance"] == "paused"
    assert report["status"]["status"] == "complete"
    assert report["status"]["output"] == ["out-a", "out-b"]
    assert run.summary() == ["first fwd a 1", "resume fwd b 1"]
    # 10 of the 60 minutes had passed before the pause: 50 remain after resume
    assert ts(report, "SLEEP_COMPLETE", "nap-1") == pytest.approx(
        report["resumed_at"] + 50 * MINUTE)


def test_crash_midway_through_terminate_with_rollback(tmp_path: Path) -> None:
    run = Run(tmp_path, "terminate")
    run.crash()
    assert run.summary() == [
        "first fwd a 1", "first fwd b 1", "first fwd c 1", "first fwd plain 1",
        "first rb c", "first rb b",
    ]

    report = run.resume()
    status = report["status"]
    assert status["status"] == "terminated"
    assert status["rollback"] == {"outcome": "complete", "error": None}
    assert run.summary() == [
        "first fwd a 1", "first fwd b 1", "first fwd c 1", "first fwd plain 1",
        "first rb c", "first rb b",
        "resume rb b", "resume rb a",
    ]
    for call in (e for e in run.effects() if e["kind"] == "rb"):
        assert call["error_name"] == "Error"  # as a Python handler sees it on workerd
        assert "Instance terminated" in call["error"]
        assert call["output"] == f"out-{call['step']}"
    names = [e["event"] for e in report["events"]]
    assert names[-1] == "WORKFLOW_TERMINATED"
    assert names.count("ROLLBACK_START") == 1
    assert "WORKFLOW_FAILURE" not in names
    assert "never-1" not in {e["step"] for e in report["events"]}


def test_crash_while_waiting_for_pause(tmp_path: Path) -> None:
    """pause() was asked while b ran; the process died before b finished."""
    run = Run(tmp_path, "waiting-for-pause")
    run.crash()
    assert run.summary() == ["first fwd a 1", "first fwd b 1"]

    report = run.resume()
    # the pause request survives the crash: b's interrupted attempt is retried, then the
    # instance pauses before c
    assert report["status_on_reopen"] in ("waitingForPause", "queued", "running")
    assert report["settled_at"] == "paused"
    assert report["status"]["status"] == "complete"
    assert report["status"]["output"] == ["out-a", "out-b", "out-c"]
    assert run.summary() == ["first fwd a 1", "first fwd b 1", "resume fwd b 2", "resume fwd c 1"]
    names = [e["event"] for e in report["events"]]
    assert names.index("WORKFLOW_PAUSED") < names.index("WORKFLOW_RESUMED")
    paused_at = names.index("WORKFLOW_PAUSED")
    c_start = next(i for i, e in enumerate(report["events"])
                   if e["event"] == "STEP_START" and e["step"] == "c-1")
    assert paused_at < c_start


def test_crash_in_a_handler_with_no_retry_left_fails_the_rollback(tmp_path: Path) -> None:
    run = Run(tmp_path, "rollback-no-retry")
    run.crash()
    report = run.resume()
    status = report["status"]
    assert status["status"] == "errored"
    assert status["error"] == {"name": "RuntimeError", "message": "plain failure after the steps"}
    assert status["rollback"] == {
        "outcome": "failed",
        "error": {"name": "WorkflowInternalError",
                  "message": "Attempt failed due to internal workflows error"},
    }
    # the interrupted handler had no retry left; the chain halts before a
    assert run.summary() == [
        "first fwd a 1", "first fwd b 1", "first fwd c 1",
        "first rb c", "first rb b",
    ]
    names = [e["event"] for e in report["events"]]
    assert "ROLLBACK_FAILED" in names and "ROLLBACK_COMPLETE" not in names
    assert names[-1] == "WORKFLOW_FAILURE"


def test_crash_while_parallel_steps_run(tmp_path: Path) -> None:
    run = Run(tmp_path, "parallel")
    run.crash()
    assert sorted(run.summary()) == ["first fwd p1 1", "first fwd p2 1"]
    report = run.resume()
    assert report["status"]["status"] == "complete"
    assert report["status"]["output"] == ["out-p1", "out-p2"]
    # p1 had completed: not re-run; p2's interrupted attempt is retried
    assert sorted(run.summary()[:2]) == ["first fwd p1 1", "first fwd p2 1"]
    assert run.summary()[2:] == ["resume fwd p2 2", "resume fwd after 1"]
