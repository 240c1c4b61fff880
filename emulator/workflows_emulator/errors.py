"""The emulator's exceptions.

Tree::

    Exception
    └── EmulatorError                 root of everything the emulator raises itself
        ├── WorkflowError             an instance/binding call Cloudflare would refuse
        │   ├── WorkflowFatalError    a step Cloudflare refuses (step limit, rollback phase)
        │   ├── SleepInThePastError   ``sleep_until`` a time that has passed
        │   ├── InstanceNotFoundError ``get`` of an unknown id
        │   └── InvalidActionError    pause/resume/terminate/... not valid in this state
        ├── ProjectConfigError        a wrangler.toml / wrangler.jsonc problem
        ├── StateDirectoryBusy        another process drives the state directory
        └── StorageError              the disk, not the workflow: full, read-only, I/O error
            └── DamagedStateError     a state file that is not (or no longer) a state file

    BaseException
    └── InstanceGone                  internal: unwinds a run() that deleted its own instance
"""

from __future__ import annotations


class EmulatorError(Exception):
    """Root of the errors raised by `workflows_emulator` itself."""


class WorkflowError(EmulatorError):
    """A binding or instance call Cloudflare would refuse; the message is Cloudflare's."""


class WorkflowFatalError(WorkflowError):
    """A step Cloudflare refuses outright: over the step limit, or during a terminate rollback."""

    workflows_error_name = "WorkflowFatalError"


class SleepInThePastError(WorkflowError):
    """``sleep_until`` a time that has passed (a plain ``Error`` on Cloudflare)."""

    workflows_error_name = "Error"


class InstanceNotFoundError(WorkflowError):
    """No instance with that id exists in this workflow."""


class InvalidActionError(WorkflowError):
    """The action is not valid in the instance's current state."""


class ProjectConfigError(EmulatorError):
    """A problem in the project's wrangler config; the message names the file and key."""


class StateDirectoryBusy(EmulatorError):
    """Another process holds the state directory's lock; the message names it."""


class StorageError(EmulatorError):
    """Reading or writing a state file failed for a reason outside the workflow.

    A storage fault stops the instance where it is (no rollback, no status change); it
    resumes from its last commit once the fault is gone.

    Attributes:
        path: the file concerned.
        cause: what went wrong, in words ("the disk is full", ...).
    """

    def __init__(self, path: object, cause: str, advice: str = "") -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{cause}: {self.path}" + (f"; {advice}" if advice else ""))


class DamagedStateError(StorageError):
    """A state file is damaged or is not a workflows-emulator state file."""


class InstanceGone(BaseException):
    """The instance was deleted from inside its own ``run()``: unwinds it at once.

    Internal control flow: do not catch this.
    """
