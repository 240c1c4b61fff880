"""Two traces side by side, aligned line by line, with the first divergence marked.

The traces are compared as the lines `trace.trace_lines` makes of them (status, output,
error, each step with its attempts and output, the rollback with each handler's attempts
and what it saw). Lines are aligned with difflib, so one extra step on one side shows as
one gap, not as every line after it differing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from .trace import Trace, trace_lines

GAP = ""


@dataclass(frozen=True)
class Row:
    """One row of the side-by-side view: a line of each side (``None``: nothing there)."""

    js: str | None
    python: str | None

    @property
    def same(self) -> bool:
        """Whether both sides have this line."""
        return self.js == self.python


def align(js: Trace, python: Trace) -> list[Row]:
    """The lines of both traces, aligned: equal lines side by side, the rest opposite gaps."""
    left, right = trace_lines(js), trace_lines(python)
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows += [Row(a, a) for a in left[i1:i2]]
            continue
        a_part, b_part = left[i1:i2], right[j1:j2]
        for k in range(max(len(a_part), len(b_part))):
            rows.append(Row(a_part[k] if k < len(a_part) else None,
                            b_part[k] if k < len(b_part) else None))
    return rows


def first_divergence(rows: list[Row]) -> int | None:
    """The index of the first row where the sides differ, or ``None`` if they agree."""
    return next((i for i, r in enumerate(rows) if not r.same), None)


def render(rows: list[Row], *, width: int = 60, titles: tuple[str, str] = ("JS", "Python")
           ) -> str:
    """The rows as two columns; differing rows marked ``≠``, the first one also ``◀``."""
    first = first_divergence(rows)
    out = [f"  {_cell(titles[0], width)} │ {titles[1]}", f"  {'─' * width}─┼─{'─' * width}"]
    for i, r in enumerate(rows):
        mark = " " if r.same else "≠"
        tail = "   ◀ first divergence" if i == first else ""
        out.append(f"{mark} {_cell(r.js, width)} │ {_cell(r.python, width).rstrip()}{tail}")
    return "\n".join(line.rstrip() for line in out)


def _cell(text: str | None, width: int) -> str:
    shown = "·" if text is None else text
    if len(shown) > width:
        shown = shown[: width - 1] + "…"
    return shown.ljust(width)


def report(js: Trace, python: Trace) -> dict[str, Any]:
    """What ``--json`` prints: both traces, whether they are equal, the first divergence."""
    rows = align(js, python)
    first = first_divergence(rows)
    return {
        "equal": first is None,
        "first_divergence": None if first is None else {
            "row": first, "js": rows[first].js, "python": rows[first].python},
        "js": js,
        "python": python,
    }
