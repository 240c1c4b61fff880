"""`EngineHost`: what an `InstanceEngine` needs from the scheduler that hosts it (its outward seam)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .clock import Clock

if TYPE_CHECKING:
    from .engine import InstanceEngine
    from .modifiers import Modifiers


class EngineHost(Protocol):
    """Services shared by every instance of one emulator."""

    @property
    def clock(self) -> Clock: ...

    @property
    def determinism(self) -> str:
        """What a divergence on replay does: "error", "warn" or "off" (`replay_guard`)."""
        ...

    @property
    def modifiers(self) -> Modifiers:
        """What tests changed about instances' steps (introspection)."""
        ...

    async def acquire_slot(self, engine: InstanceEngine, waking: bool = False) -> None:
        """Wait for a concurrency slot (``queued`` until then). Waking instances go first."""
        ...

    def release_slot(self, engine: InstanceEngine) -> None:
        """Give back the slot, if the engine holds one."""
        ...

    def busy_changed(self, delta: int) -> None:
        """A step callback or rollback handler started (+1) or ended (-1)."""
        ...

    def activity(self) -> None:
        """Something happened that a waiter may want to look at."""
        ...

    def status_changed(self, engine: InstanceEngine) -> None:
        """The instance's status changed (already persisted in its own storage)."""
        ...

    def logged(
        self, engine: InstanceEngine, event_id: int, event: str, step: str | None,
        attempt: int | None, data: dict[str, Any] | None, ts: float,
    ) -> None:
        """An event was appended to the instance's log."""
        ...
