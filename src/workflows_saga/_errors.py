"""The binding's exceptions.

Tree::

    Exception
    ├── NonRetryableError          raise in a step or rollback handler: no more attempts
    └── WorkflowsSagaError         root of everything this package raises itself
        ├── InvalidStepConfigError a step/rollback config or option Cloudflare would reject
        └── StepError              a step failed with an error that kept no Python type
            └── WorkflowTimeoutError  an attempt or an event wait ran past its timeout
"""

from __future__ import annotations


class NonRetryableError(Exception):
    """Raise inside a step callback or rollback handler to stop its retries at once.

    Under the emulator this class is the one the engine recognises; on Cloudflare the
    Pyodide backend turns it into the platform's non-retryable error.
    """


class WorkflowsSagaError(Exception):
    """Root of the errors raised by `workflows_saga` itself."""


class InvalidStepConfigError(WorkflowsSagaError, ValueError):
    """A `config`, `rollback_config` or rollback option Cloudflare would reject.

    Raised before the step runs. The message is Cloudflare's own text, so that what
    fails here fails the same way on the platform (where it is a ``WorkflowFatalError``).
    """

    workflows_error_name = "WorkflowFatalError"


class StepError(WorkflowsSagaError):
    """A step failed with an error that does not keep its Python type across the engine.

    On Cloudflare only `TypeError`, `ValueError` and `NonRetryableError` come back out of
    `step.do` as themselves; anything else crosses JavaScript and comes back as a generic
    error. This class is that generic error, under the emulator and on Cloudflare alike.

    Attributes:
        name: the original error's class name, e.g. ``"KeyError"``.
        message: the original error's message.
    """

    def __init__(self, message: str, *, name: str = "Error") -> None:
        super().__init__(message)
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


class WorkflowTimeoutError(StepError):
    """An attempt, or ``wait_for_event``, ran past its timeout (the engine's own error)."""

    def __init__(self, message: str, *, name: str = "WorkflowTimeoutError") -> None:
        super().__init__(message, name=name)

    def __str__(self) -> str:
        return self.message


KEEPS_PYTHON_TYPE: dict[str, type[Exception]] = {
    "NonRetryableError": NonRetryableError,
    "TypeError": TypeError,
    "ValueError": ValueError,
}
"""The errors that come back out of ``step.do`` as themselves on Cloudflare."""


NON_RETRYABLE = "NonRetryableError"


def error_record(exc: BaseException) -> dict[str, str]:
    """``exc`` as the engine stores it: ``{"name", "message"}``.

    The name is Cloudflare's where an error class declares one (``workflows_error_name``);
    an error whose message starts with ``NonRetryableError`` counts as one, as on Cloudflare,
    and is reported without that prefix.
    """
    if isinstance(exc, StepError):
        name, message = exc.name, exc.message
    else:
        name = getattr(type(exc), "workflows_error_name", None) or type(exc).__name__
        message = str(exc)
    if name != NON_RETRYABLE and message.startswith(NON_RETRYABLE):
        name, message = NON_RETRYABLE, message[len(NON_RETRYABLE):].lstrip(":").lstrip()
    return {"name": name, "message": message}


def is_non_retryable(record: dict[str, str]) -> bool:
    """Whether the engine must not retry the error behind ``record``."""
    return record.get("name") == NON_RETRYABLE


def error_from_record(record: dict[str, str]) -> Exception:
    """Rebuild the error ``step.do`` raises from a stored ``{"name", "message"}``."""
    name, message = record.get("name", "Error"), record.get("message", "")
    if message.startswith("NonRetryableError"):
        name = "NonRetryableError"
    if name == "WorkflowTimeoutError":
        return WorkflowTimeoutError(message)
    cls = KEEPS_PYTHON_TYPE.get(name)
    return cls(message) if cls is not None else StepError(message, name=name)
