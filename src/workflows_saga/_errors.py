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

    Takes JS's arguments, ``NonRetryableError(message, name="NonRetryableError")``. It is
    non-retryable by class, whatever its ``name`` (as JS's ``__brand``); the engine records
    it, and ``step.do`` re-raises it, as ``NonRetryableError`` with the message: the Python
    SDK's bridge does the same on Cloudflare (it keeps only the class name and message).
    Under the emulator this class is the one the engine recognises; on Cloudflare the
    Pyodide backend turns it into the platform's non-retryable error.

    Attributes:
        name: the given name (``"NonRetryableError"`` by default).
        message: the message; ``str(error)`` is the message too.
    """

    def __init__(self, message: str = "", name: str = "NonRetryableError") -> None:
        super().__init__(message)
        self.message = message
        self.name = name


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
