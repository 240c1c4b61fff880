"""The output gate: results held back in memory are committed before anything can depend on them.

A step's result is not committed in a transaction of its own: `InstanceStore.deferred` holds
it until the next commit of its instance (the next step's start, usually), which makes a run
of steps cost one commit each. As a Durable Object's output gate holds outgoing messages
until the writes before them are durable, `open_gate` commits every held result before
anything leaves an instance or lets the world see one:

- a commit to any instance's file (another instance starting a step, being created, ...),
  an instance's deletion;
- a binding's write (KV, R2, D1), a call into a Durable Object or a service, an outbound
  ``fetch``, a call to a test double;
- what an observer is shown: a status, a step's row, a subscriber's event, a dev server
  response.

The event loop's next turn commits them too (`InstanceStore.deferred` schedules it). Holders
are kept per thread: an emulator's stores are used by the one thread that runs its loop.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Protocol

from .errors import StorageError


class Holder(Protocol):
    """Something that holds uncommitted results (an `InstanceStore`)."""

    def commit_deferred(self) -> None:
        """Commit what it holds (raises `StorageError` if it cannot)."""
        ...


class _Held(threading.local):
    def __init__(self) -> None:
        self.holders: set[Holder] = set()
        self.opening = False


_held = _Held()

acting: ContextVar[Holder | None] = ContextVar("workflows_emulator_acting", default=None)
"""The store of the instance whose code runs in this task (set by its engine's driver)."""


def hold(holder: Holder) -> None:
    """``holder`` holds results from now on, until `release`."""
    _held.holders.add(holder)


def release(holder: Holder) -> None:
    """``holder`` holds nothing any more (committed, or dropped)."""
    _held.holders.discard(holder)


def holds(holder: Holder) -> bool:
    """Whether ``holder`` holds results."""
    return holder in _held.holders


def open_gate(*, but: Holder | None = None) -> None:
    """Commit every held result of this thread now (but ``but``'s): call before anything leaves.

    Raises:
        StorageError: the results of the instance acting here (`acting`) could not be
            committed: what was about to follow from them must not happen. Another
            instance's failure goes to its own engine only.
    """
    held = _held
    holders = held.holders
    if not holders or held.opening or (len(holders) == 1 and but in holders):
        return  # nothing (else) held, or already committing (a commit does not gate again)
    held.opening = True
    own = acting.get()
    failure: StorageError | None = None
    try:
        for holder in list(holders):
            if holder is not but:
                try:
                    holder.commit_deferred()
                except StorageError as exc:
                    if holder is own:
                        failure = exc
    finally:
        held.opening = False
    if failure is not None:
        raise failure
