"""Date-gated behaviour follows the compatibility date and flags, as on Cloudflare."""

from __future__ import annotations

from typing import Any

import pytest

from workflows_emulator import Emulator, EmulatorError
from workflows_emulator.compat import Compatibility
from workflows_saga import NonRetryableError, RollbackContext, WorkflowEntrypoint

FATAL = ("The execution of the Workflow instance was terminated, as a step threw an "
         "NonRetryableError and it was not handled")
SEEN: list[str] = []


def refuse() -> None:
    raise NonRetryableError("card declined")


async def undo(rb: RollbackContext[Any]) -> None:
    SEEN.append(type(rb.error).__name__)


class Charge(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("charge", refuse, rollback=undo)


async def failure(emu: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    SEEN.clear()
    inst = await emu.workflow(Charge, name="charge").create()
    status = await inst.wait()
    attempt = next(e for e in inst.events() if e["event"] == "ATTEMPT_FAILURE")
    return status, attempt["data"]["error"]


@pytest.mark.workflows_emulator(compatibility_date="2026-05-14")
async def test_from_2026_05_14_the_error_keeps_its_name_and_message(emu: Emulator) -> None:
    status, attempt_error = await failure(emu)
    assert status["error"] == {"name": "NonRetryableError", "message": "card declined"}
    assert attempt_error == {"name": "NonRetryableError", "message": "card declined"}
    assert SEEN == ["NonRetryableError"]


@pytest.mark.workflows_emulator(compatibility_date="2026-03-01")
async def test_before_it_the_instance_fails_with_a_generic_fatal_error(emu: Emulator) -> None:
    status, attempt_error = await failure(emu)
    assert status["error"] == {"name": "WorkflowFatalError", "message": FATAL}
    assert attempt_error == {"name": "WorkflowFatalError",
                             "message": 'Step threw a NonRetryableError with message "card declined"'}
    assert status["rollback"]["outcome"] == "complete"
    assert SEEN == ["NonRetryableError"]  # the handler still sees the error itself


def test_flags_override_the_date_either_way() -> None:
    preserve = "workflows_preserve_non_retryable_error_message"
    replace = "workflows_replace_non_retryable_error_message"
    assert Compatibility.of().preserve_non_retryable_error  # a current date
    assert not Compatibility.of("2026-05-13").preserve_non_retryable_error
    assert Compatibility.of("2026-05-13", [preserve]).preserve_non_retryable_error
    assert not Compatibility.of("2026-06-01", [replace]).preserve_non_retryable_error
    with pytest.raises(EmulatorError, match="keep one"):
        Compatibility.of("2026-06-01", [preserve, replace])
    with pytest.raises(EmulatorError, match="must be a date like"):
        Emulator(compatibility_date="June")


@pytest.mark.parametrize("date", ["2026-06-01\n", "2026-06-01 ", "\uff12\uff10\uff12\uff16-06-01"])
def test_a_date_must_be_the_whole_string_of_ascii_digits(date: str) -> None:
    with pytest.raises(EmulatorError, match="must be a date like"):
        Compatibility.of(date)
