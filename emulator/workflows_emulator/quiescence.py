"""Whether the event loop has callbacks ready to run: the one place that reads asyncio internals.

The scheduler needs to know when every instance has gone as far as it can before it moves
virtual time on. asyncio has no public "is anything ready?" call; `BaseEventLoop` keeps its
ready queue in ``_ready`` (CPython 3.11-3.13). That assumption lives here alone, and
``tests/emulator/test_quiescence.py`` fails if a Python version breaks it.
"""

from __future__ import annotations

import asyncio


def has_ready_callbacks(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` has callbacks scheduled to run on its next iteration.

    Raises:
        RuntimeError: the loop keeps no ready queue where CPython's does (another loop
            implementation): use the real clock, or the default asyncio loop.
    """
    ready = getattr(loop, "_ready", None)
    if ready is None:
        raise RuntimeError(
            f"{type(loop).__name__} keeps no ready queue the emulator can read; the virtual "
            "clock needs asyncio's default event loop (or use Emulator(clock='real'))")
    return len(ready) > 0
