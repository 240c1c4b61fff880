"""`Compatibility`: the behaviours that a Worker's compatibility date and flags switch.

Cloudflare gates some Workflows behaviour on the Worker's ``compatibility_date`` and
``compatibility_flags`` (wrangler.toml). An emulator built without them behaves as a Worker
with a current date does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from workflows_saga.backend import ErrorRecord

from .errors import EmulatorError

PRESERVE_NON_RETRYABLE = "workflows_preserve_non_retryable_error_message"
REPLACE_NON_RETRYABLE = "workflows_replace_non_retryable_error_message"
PRESERVE_NON_RETRYABLE_DATE = "2026-05-14"
"""From this date an unhandled ``NonRetryableError`` keeps its name and message."""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
UNHANDLED_NON_RETRYABLE = ErrorRecord(
    "WorkflowFatalError", "The execution of the Workflow instance was terminated, as a step "
    "threw an NonRetryableError and it was not handled")
"""What fails the instance on an unhandled NonRetryableError under older compatibility dates."""


@dataclass(frozen=True, slots=True)
class Compatibility:
    """What the compatibility date and flags decide for the engine.

    Attributes:
        preserve_non_retryable_error: an unhandled ``NonRetryableError`` fails the instance
            as ``{name: "NonRetryableError", message}``; otherwise as Cloudflare's older
            ``WorkflowFatalError`` ("... a step threw an NonRetryableError and it was not
            handled"), with the attempt error "Step threw a NonRetryableError with message ...".
    """

    preserve_non_retryable_error: bool = True

    def attempt_error(self, record: ErrorRecord) -> ErrorRecord:
        """What an attempt's log entry shows for the error it failed with."""
        if record.non_retryable and not self.preserve_non_retryable_error:
            return ErrorRecord(
                "WorkflowFatalError", f'Step threw a NonRetryableError with message "{record.message}"')
        return record

    def instance_error(self, trigger: ErrorRecord) -> ErrorRecord:
        """What ``status().error`` shows for the error that failed the instance."""
        if trigger.non_retryable and not self.preserve_non_retryable_error:
            return UNHANDLED_NON_RETRYABLE
        return trigger

    @classmethod
    def of(cls, date: str | None = None, flags: Iterable[str] = ()) -> Compatibility:
        """The behaviour of a Worker with ``compatibility_date`` ``date`` and ``flags``.

        ``date=None`` means a current date.

        Raises:
            EmulatorError: a date that is not ``YYYY-MM-DD``, or both flags of a pair.
        """
        flags = set(flags)
        if date is not None and not _DATE.fullmatch(date):
            raise EmulatorError(
                f"compatibility_date {date!r} must be a date like \"2026-05-14\"")
        if PRESERVE_NON_RETRYABLE in flags and REPLACE_NON_RETRYABLE in flags:
            raise EmulatorError(
                f"compatibility_flags has both {PRESERVE_NON_RETRYABLE} and "
                f"{REPLACE_NON_RETRYABLE}: keep one")
        preserve = date is None or date >= PRESERVE_NON_RETRYABLE_DATE
        if PRESERVE_NON_RETRYABLE in flags:
            preserve = True
        if REPLACE_NON_RETRYABLE in flags:
            preserve = False
        return cls(preserve_non_retryable_error=preserve)


CURRENT = Compatibility()
"""The behaviour of a Worker with a current compatibility date."""
