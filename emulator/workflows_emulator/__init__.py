"""A local, offline emulator of Cloudflare Workflows, with saga rollbacks.

Instances persist through an SQLite stand-in for the Durable Object Cloudflare runs per
instance; time is virtual by default, so sleeps and retry delays cost no wall time.

Example:
    >>> from workflows_emulator import Emulator          # doctest: +SKIP
    >>> async with Emulator() as emu:
    ...     wf = emu.workflow(Transfer, name="transfer")
    ...     inst = await wf.create(id="t-1", params={"amount": 10})
    ...     print(await inst.wait())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy_exports import lazy_exports

if TYPE_CHECKING:
    from workflows_saga import WorkflowTimeoutError

    from .clock import Clock, RealClock, VirtualClock
    from .durable_object import DurableObjectNamespace, DurableObjectStorage
    from .emulator import Emulator, Instance, Workflow
    from .errors import (
        DamagedStateError,
        EmulatorError,
        InstanceNotFoundError,
        InvalidActionError,
        ProjectConfigError,
        StateDirectoryBusy,
        StorageError,
        WorkflowError,
    )
    from .log_fold import StepRow

# Loaded on first use, so the CLI's read-only commands start without the engine.
_HOMES = {
    "WorkflowTimeoutError": "workflows_saga",
    "Clock": ".clock", "RealClock": ".clock", "VirtualClock": ".clock",
    "DurableObjectNamespace": ".durable_object", "DurableObjectStorage": ".durable_object",
    "Emulator": ".emulator", "Instance": ".emulator", "Workflow": ".emulator",
    "StepRow": ".log_fold",
    **dict.fromkeys(("DamagedStateError", "EmulatorError", "InstanceNotFoundError",
                     "InvalidActionError", "ProjectConfigError", "StateDirectoryBusy",
                     "StorageError", "WorkflowError"), ".errors"),
}


__getattr__ = lazy_exports(__name__, _HOMES, globals())


__all__ = [
    "Clock",
    "DamagedStateError",
    "DurableObjectNamespace",
    "DurableObjectStorage",
    "Emulator",
    "EmulatorError",
    "Instance",
    "InstanceNotFoundError",
    "InvalidActionError",
    "ProjectConfigError",
    "RealClock",
    "StateDirectoryBusy",
    "StepRow",
    "StorageError",
    "VirtualClock",
    "Workflow",
    "WorkflowError",
    "WorkflowTimeoutError",
]
