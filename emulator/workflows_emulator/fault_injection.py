"""Crash an emulator at a chosen log event, in the test's own process, as ``kill -9`` would.

``emu.crash_at("STEP_SUCCESS", nth=3)`` arms a `CrashPoint`: once the third ``STEP_SUCCESS``
of any instance is committed, every later commit of that emulator's state files fails (the
storage seam's commit hook refuses it), so nothing more reaches the disk; ``await
crash.wait(instance)`` drives until then and closes the emulator, which is now a dead
process's state directory. Open a new `Emulator` on the same directory to see what a
restart recovers. "During the 2nd rollback handler" is ``crash_at("ROLLBACK_ATTEMPT_START",
nth=2)``: its attempt is logged, its callback's work never is.

Step failures, errors and timeouts need no crash: see `introspection` (``mock_step_error``,
``force_step_timeout``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from .durable_object import StorageHooks, install_hooks
from .errors import EmulatorError
from .records import LogEvent

if TYPE_CHECKING:
    from .emulator import Emulator, Instance
    from .engine import InstanceEngine


class _RefuseCommits(StorageHooks):
    """After the crash, refuses every commit under one state directory (others go on)."""

    def __init__(self, state_dir: Path, previous: StorageHooks | None) -> None:
        self.state_dir = state_dir
        self.previous = previous
        self.crashed = False

    def before_commit(self, path: Path) -> None:
        if self.crashed and path.is_relative_to(self.state_dir):
            raise sqlite3.OperationalError("the emulator crashed here (fault injection)")
        if self.previous is not None:
            self.previous.before_commit(path)

    def after_commit(self, path: Path) -> None:
        if self.previous is not None:
            self.previous.after_commit(path)


class CrashPoint:
    """Where an emulator dies: right after the ``nth`` commit of ``event`` (of ``step``).

    Made by `Emulator.crash_at`. ``crashed`` says whether it happened; ``where`` describes it.
    """

    def __init__(self, emulator: Emulator, event: str, nth: int, step: str | None) -> None:
        known = {e.value for e in LogEvent}
        if event not in known:
            raise EmulatorError(f"crash_at: unknown log event {event!r}; use one of "
                                f"{sorted(known)}")
        if not isinstance(nth, int) or isinstance(nth, bool) or nth < 1:
            raise EmulatorError(f"crash_at: nth must be a positive integer, not {nth!r}")
        self._emulator = emulator
        self.event = event
        self.nth = nth
        self.step = step
        self._seen = 0
        self.crashed = False
        self.where = ""
        self._hooks = _RefuseCommits(emulator.state_dir, install_hooks(None))
        install_hooks(self._hooks)

    def logged(self, engine: InstanceEngine, event: str, step: str | None) -> None:
        """Told of every log entry appended (before its commit)."""
        if self.crashed or event != self.event or (self.step is not None and step != self.step):
            return
        self._seen += 1
        if self._seen == self.nth:
            label = f" of step {step}" if step else ""
            self.where = f"after {event} #{self.nth}{label} of instance {engine.id}"
            engine.store.when_committed(self._crash)
            engine.store.want_commit()  # on disk at once, though the engine might wait

    def _crash(self) -> None:
        self.crashed = True
        self._hooks.crashed = True

    async def wait(self, instance: Instance | None = None, timeout: float | None = 30.0) -> None:
        """Drive ``instance`` (or just wait) until the crash, then close the emulator as the
        dead process it now is (its state stays as committed up to the crash).

        Raises:
            EmulatorError: the instance ended without reaching the crash point.
            TimeoutError: no crash within ``timeout`` real seconds.
        """
        emulator = self._emulator
        try:
            if instance is not None and not self.crashed:
                engine = await instance._live_engine()
                engine.start()
                await emulator._scheduler.drive_until(
                    engine, lambda: self.crashed or engine.terminal, timeout)
            else:
                async with asyncio.timeout(timeout):
                    while not self.crashed:
                        await asyncio.sleep(0.001)
            if not self.crashed:
                raise EmulatorError(
                    f"crash_at({self.event!r}, nth={self.nth}): instance "
                    f"{instance.id if instance else ''} ended without reaching it "
                    f"({self._seen} seen)")
        finally:
            await emulator.close()
            self.disarm()

    def disarm(self) -> None:
        """Remove the commit hook (done by `wait`)."""
        if install_hooks(self._hooks.previous) is not self._hooks:  # someone else's on top
            install_hooks(self._hooks)
            raise EmulatorError("crash_at: storage hooks were replaced meanwhile")
