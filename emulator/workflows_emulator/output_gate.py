"""The output gate: results held back in memory are committed before anything can depend on them.

A step's result is not committed in a transaction of its own: `InstanceStore.deferred` holds
it until the next commit of its instance (the next step's start, usually), which makes a run
of steps cost one commit each. As a Durable Object's output gate holds outgoing messages
until the writes before them are durable, `open_gate` commits every held result before
anything leaves an instance or lets the world see one:

- a commit to any instance's file (another instance starting a step, being created, ...);
- a binding's write (KV, R2, D1), a call into a Durable Object or a service, an outbound
  ``fetch``, a call to a test double;
- what an observer is shown: a status, a step's row, a subscriber's event, a dev server
  response.

The event loop's next turn commits them too (`InstanceStore.deferred` schedules it).
"""

from __future__ import annotations

from typing import Protocol

from .errors import StorageError


class Holder(Protocol):
    """Something that holds uncommitted results (an `InstanceStore`)."""

    def commit_deferred(self) -> None:
        """Commit what it holds (raises `StorageError` if it cannot)."""
        ...


_HOLDING: set[Holder] = set()
_opening = False


def hold(holder: Holder) -> None:
    """``holder`` holds results from now on, until `release`."""
    _HOLDING.add(holder)


def release(holder: Holder) -> None:
    """``holder`` holds nothing any more (committed, or dropped)."""
    _HOLDING.discard(holder)


def holds(holder: Holder) -> bool:
    """Whether ``holder`` holds results."""
    return holder in _HOLDING


def open_gate(*, but: Holder | None = None) -> None:
    """Commit every held result now (but ``but``'s): call before anything leaves.

    A holder whose commit fails keeps what it holds; the fault went to its own engine.
    """
    global _opening
    if not _HOLDING or _opening or (len(_HOLDING) == 1 and but in _HOLDING):
        return  # nothing (else) held, or already committing (a commit does not gate again)
    _opening = True
    try:
        for holder in list(_HOLDING):
            if holder is not but:
                try:
                    holder.commit_deferred()
                except StorageError:
                    pass
    finally:
        _opening = False
