"""Durations as Workflows writes them: milliseconds, or strings such as ``"10 seconds"``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

Duration = str | int | float | timedelta
"""A duration: milliseconds (number), a ``"<n> <unit>[s]"`` string, or a `timedelta`."""

_UNIT_MS = {
    "millisecond": 1,
    "ms": 1,
    "second": 1_000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 7 * 86_400_000,
    "month": 30 * 86_400_000,
    "year": 365 * 86_400_000,
}
_PATTERN = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*$", re.IGNORECASE)


def parse_duration_ms(value: object) -> float | None:
    """Return ``value`` in milliseconds, or ``None`` if it is not a duration.

    Example:
        >>> parse_duration_ms("2 minutes")
        120000.0
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, timedelta):
        return value.total_seconds() * 1000.0
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            return None
        unit = match.group(2).lower()
        factor = _UNIT_MS.get(unit) or _UNIT_MS.get(unit.rstrip("s"))
        if factor is None:
            return None
        return float(match.group(1)) * factor
    return None


def duration_ms(value: object, *, what: str = "duration") -> int:
    """Return ``value`` in whole milliseconds, or raise `ValueError` saying what is accepted."""
    ms = parse_duration_ms(value)
    if ms is None or ms < 0:
        raise ValueError(
            f"invalid {what} {value!r}: use milliseconds (a number >= 0), a timedelta, "
            'or a string such as "30 seconds" (units: second, minute, hour, day, week, '
            "month, year)"
        )
    return int(ms)
