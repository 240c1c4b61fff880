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
    mapping: dict[str, Any] = {}
    position = 0
    for number, name in found:
        if number:
            index = int(number) - 1
            if 0 <= index < len(values):
                mapping[number] = values[index]
        elif name not in mapping and position < len(values):
            mapping[name] = values[position]
            position += 1
    return mapping
