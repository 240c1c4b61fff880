"""The emulator's exceptions.

Tree::

    Exception
    └── EmulatorError                 root of everything the emulator raises itself
        ├── WorkflowError             an instance/binding call Cloudflare would refuse
        │   ├── WorkflowFatalError    a step Cloudflare refuses (step limit, rollback phase)
        │   ├── SleepInThePastError   ``sleep_until`` a time that has passed
        │   ├── InstanceNotFoundError ``get`` of an unknown id
        │   └── InvalidActionError    pause/resume/terminate/... not valid in this state
        └── ProjectConfigError        a wrangler.toml / wrangler.jsonc problem

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


class InstanceGone(BaseException):
    """The instance was deleted from inside its own ``run()``: unwinds it at once.

    Internal control flow: do not catch this.
    """
