"""The fenced code blocks of docs/porting.md, by the marker comment on the line before each.

``<!-- runnable: FILE -->`` before a ``python`` block: a complete pytest file, run verbatim.
``<!-- fragment -->``: a shape shown alone, not run. ``<!-- error: ID -->`` before a ``text``
block: an error message the binding gives, checked against a live run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "porting.md"

_BLOCK = re.compile(r"(?:<!-- (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```\n",
                    re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its marker comment (``""`` if none) and its text."""

    lang: str
    marker: str
    body: str

    @property
    def runnable_file(self) -> str | None:
        """The file name of a runnable block, else ``None``."""
        kind, _, arg = self.marker.partition(": ")
        return arg if kind == "runnable" else None

    @property
    def error_id(self) -> str | None:
        """The id of an error-message block, else ``None``."""
        kind, _, arg = self.marker.partition(": ")
        return arg if kind == "error" else None


def guide_blocks() -> list[Block]:
    """Every fenced block of the guide, in order."""
    text = GUIDE.read_text()
    return [Block(m["lang"], m["marker"] or "", m["body"]) for m in _BLOCK.finditer(text)]


def runnable_samples() -> dict[str, str]:
    """``{file name: text}`` of the runnable blocks."""
    return {b.runnable_file: b.body for b in guide_blocks() if b.runnable_file}


def error_blocks() -> dict[str, str]:
    """``{id: message}`` of the error-message blocks (one line each)."""
    return {b.error_id: b.body.strip() for b in guide_blocks() if b.error_id}
