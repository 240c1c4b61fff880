"""`RollbackRunner` alone, over a real store: order, what handlers receive, halting, resuming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emulator_support import ClockHost, open_store
from workflows_emulator.attempts import AttemptRunner, PlannedStep
from workflows_emulator.instance_store import InstanceStore
from workflows_emulator.rollback_runner import RollbackRunner
from workflows_saga import NonRetryableError, RollbackContext
from workflows_saga.backend import DEFAULT_RESOLVED, ErrorRecord, RollbackOptions

TRIGGER = ErrorRecord("Error", "charge failed")


def log_step(store: InstanceStore, name: str, seq: int, output: Any = None,
             ok: bool = True) -> str:
    """Log a finished forward step with a rollback handler, as the step backend would."""
    step = PlannedStep(f"do:1:{name}", "do", name, 1, seq, DEFAULT_RESOLVED.shown,
                       has_rollback=True)
    with store.transaction():
        row = store.append("STEP_START", float(seq), key=step.key, label=step.label,
                           data=step.start_data())
        store.append("ATTEMPT_START", float(seq), row, attempt=1)
        if ok:
            store.append("STEP_SUCCESS", float(seq), row, data={"output": output})
        else:
            store.append("STEP_FAILURE", float(seq), row, data={"error": TRIGGER.to_json()})
    return step.key


def runner(tmp_path: Path, handlers: dict[str, Any]) -> tuple[RollbackRunner, InstanceStore]:
    host, store = ClockHost(), open_store(tmp_path)
    registry = {}
    for name, seq, output, ok in (("debit", 0, {"id": 1}, True), ("reserve", 1, "r", True),
                                  ("charge", 2, None, False)):
        key = log_step(store, name, seq, output, ok)
        if name in handlers:
            registry[key] = RollbackOptions(handlers[name])
    return RollbackRunner(store, AttemptRunner(host, store), registry, host.clock), store


async def test_handlers_run_newest_started_first_with_outputs(tmp_path: Path) -> None:
    seen: list[tuple[str, Any, str]] = []

    def record(name: str) -> Any:
        async def handler(rb: RollbackContext[Any]) -> None:
            seen.append((rb.step_name, rb.output, str(rb.error)))
        return handler

    rb, store = runner(tmp_path, {n: record(n) for n in ("debit", "reserve", "charge")})
    marks: list[bool] = []
    outcome = await rb.run(TRIGGER, False, lambda: marks.append(True))
    assert outcome is not None and outcome.to_json() == {"outcome": "complete", "error": None}
    assert [s[0] for s in seen] == ["charge-1", "reserve-1", "debit-1"]
    assert [s[1] for s in seen] == [None, "r", {"id": 1}]  # the failed step gets None
    assert marks == [True] and not rb.active
    store.close()


async def test_the_chain_halts_at_the_first_handler_that_fails(tmp_path: Path) -> None:
    ran: list[str] = []

    async def fails(rb: RollbackContext[Any]) -> None:
        ran.append(rb.step_name)
        raise NonRetryableError("cannot undo")

    async def fine(rb: RollbackContext[Any]) -> None:
        ran.append(rb.step_name)

    rb, store = runner(tmp_path, {"charge": fine, "reserve": fails, "debit": fine})
    outcome = await rb.run(TRIGGER, False, lambda: None)
    assert ran == ["charge-1", "reserve-1"]
    assert outcome is not None and outcome.error == ErrorRecord("NonRetryableError", "cannot undo")
    store.close()


async def test_a_handler_missing_after_a_restart_fails_the_phase(tmp_path: Path) -> None:
    rb, store = runner(tmp_path, {})
    outcome = await rb.run(TRIGGER, True, lambda: None)
    assert outcome is not None and outcome.error is not None
    assert outcome.error.name == "RollbackMissing"
    assert store.rows["rollback:do:1:charge"].state == "failure"
    store.close()
