"""Positional values for SQL with numbered or named placeholders, as D1 and Durable Objects
bind them, in the form Python's sqlite3 takes on every supported version.

``?1``/``?2`` take the values by number; ``:name``/``@name``/``$name`` by their order of first
appearance (D1 binds them by position). Python 3.12 warns, and 3.14 refuses, when a sequence
meets such placeholders, so they are given as a mapping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)
_PLACEHOLDER = re.compile(r"\?(\d+)|[:@$]([A-Za-z_][A-Za-z0-9_]*)")


def sqlite_params(statement: str, values: Sequence[Any]) -> Sequence[Any] | dict[str, Any]:
    """``values`` as sqlite3 should receive them for ``statement``."""
    if not values:
        return values
    found = _PLACEHOLDER.findall(_LITERALS.sub("''", statement))
    if not found:
        return values
    numbers = {int(n) for n, _ in found if n}
    names = list(dict.fromkeys(name for n, name in found if not n))
    if (numbers and names) or (numbers and max(numbers) != len(values)) or \
            (names and len(names) != len(values)):
        return values  # a count that does not fit: SQLite says so, as D1 does
    if numbers:
        return {str(n): values[n - 1] for n in numbers}
    return dict(zip(names, values, strict=True))
