"""The pure fold of log entries into step rows, and the typed instance records."""

from __future__ import annotations

import gc

from workflows_emulator.log_fold import fold, keys_from, public_data
from workflows_emulator.records import (
    InstanceMeta,
    InstanceStatus,
    Phase,
    RollbackOutcome,
)
from workflows_saga.backend import ErrorRecord


def start(rows: dict, key: str, name: str, seq: int, kind: str = "do", **extra: object) -> None:
    fold(rows, "STEP_START" if kind == "do" else "SLEEP_START", key, 0.0, None,
         {"kind": kind, "name": name, "count": 1, "seq": seq, "config": None, **extra})


def test_a_retried_step_folds_into_one_row_with_its_attempts() -> None:
    rows: dict = {}
    start(rows, "do:1:s", "s", 0)
    fold(rows, "ATTEMPT_START", "do:1:s", 1.0, 1, None)
    fold(rows, "ATTEMPT_FAILURE", "do:1:s", 2.0, 1,
         {"error": {"name": "E", "message": "m"}, "retryDelayMs": 500})
    assert rows["do:1:s"].wake_at == 502.0  # the failure at 2 ms plus the 500 ms delay
    fold(rows, "ATTEMPT_START", "do:1:s", 502.0, 2, None)
    fold(rows, "ATTEMPT_SUCCESS", "do:1:s", 503.0, 2, None)
    fold(rows, "STEP_SUCCESS", "do:1:s", 503.0, None, {"output": {"a": [1]}})
    row = rows["do:1:s"]
    assert (row.state, row.output, row.attempts, row.label) == ("success", {"a": [1]}, 2, "s-1")
    assert [a.state for a in row.attempt_log] == ["failure", "success"]
    assert row.attempt_log[0].error == ErrorRecord("E", "m")


def test_a_step_failed_with_its_attempt_open_ends_that_attempt_as_failed() -> None:
    """A recovered crash: the step's failure closes the attempt cut off, keeping its start."""
    rows: dict = {}
    start(rows, "do:1:s", "s", 0)
    fold(rows, "ATTEMPT_START", "do:1:s", 1.0, 1, None)
    assert rows["do:1:s"].attempt_open
    fold(rows, "STEP_FAILURE", "do:1:s", 9.0, None, {"error": {"name": "E", "message": "m"}})
    row = rows["do:1:s"]
    assert not row.attempt_open
    assert [(a.number, a.started_at, a.ended_at, a.state) for a in row.attempt_log] == [
        (1, 1.0, None, "failure")]


def test_the_attempts_of_a_finished_step_are_not_walked_by_the_garbage_collector() -> None:
    """A row lives as long as its instance: its attempts are plain tuples of plain values,
    which the collector stops tracking, and `attempt_log` hands out copies."""
    rows: dict = {}
    start(rows, "do:1:s", "s", 0)
    fold(rows, "ATTEMPT_START", "do:1:s", 1.0, 1, None)
    fold(rows, "ATTEMPT_SUCCESS", "do:1:s", 2.0, 1, None)
    fold(rows, "STEP_SUCCESS", "do:1:s", 2.0, None, {"output": 1})
    row = rows["do:1:s"]
    gc.collect()
    gc.collect()  # (an enclosing tuple may wait for the collection after its items')
    assert not gc.is_tracked(row.attempts_kept)
    assert not any(gc.is_tracked(attempt) for attempt in row.attempts_kept)
    row.attempt_log[0].state = "changed"
    assert [a.state for a in row.attempt_log] == ["success"]


def test_resume_shifts_pending_wake_ups_by_the_pause() -> None:
    rows: dict = {}
    start(rows, "sleep:1:nap", "nap", 0, kind="sleep", until=1000.0)
    fold(rows, "WORKFLOW_RESUMED", None, 5.0, None, {"shiftMs": 250})
    assert rows["sleep:1:nap"].wake_at == 1250.0


def test_a_restart_forgets_the_step_those_after_it_and_every_handler() -> None:
    rows: dict = {}
    for seq, name in enumerate(("a", "b", "c")):
        start(rows, f"do:1:{name}", name, seq)
    fold(rows, "ROLLBACK_STEP_START", "rollback:do:1:a", 0.0, None,
         {"kind": "rollback", "name": "a-1", "count": 1, "seq": -1, "config": None})
    assert keys_from(rows, "do:1:b") == {"do:1:b", "do:1:c", "rollback:do:1:a"}
    assert keys_from(rows, "do:1:zzz") is None


def test_bookkeeping_fields_are_not_shown() -> None:
    assert public_data({"kind": "do", "name": "s", "count": 1, "seq": 0, "config": {}}) == {
        "config": {}}
    assert public_data(None) is None


def test_instance_meta_round_trips_through_json_and_keeps_unknown_keys() -> None:
    meta = InstanceMeta("i", "wf", {"p": 1}, 10.0, status=InstanceStatus.ERRORED,
                        error=ErrorRecord("E", "m"), phase=Phase.DONE,
                        rollback=RollbackOutcome(ErrorRecord("R", "x")))
    data = meta.to_json()
    assert data["status"] == "errored" and data["error"] == {"name": "E", "message": "m"}
    data["from_a_newer_version"] = True
    again = InstanceMeta.from_json(data)
    assert again.to_json() == data
    assert again.status_json() == {"status": "errored", "error": {"name": "E", "message": "m"},
                                   "output": None,
                                   "rollback": {"outcome": "failed",
                                                "error": {"name": "R", "message": "x"}}}
    assert InstanceStatus.COMPLETE.terminal and not InstanceStatus.WAITING.terminal
