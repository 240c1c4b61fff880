"""A one-workflow Worker project on disk, for tests that run the CLI or the dev server on
code of their own (workflow ``flow``, binding ``FLOW``, class ``Flow`` in ``src/entry.py``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

ONE_WORKFLOW_TOML = """
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]
[[workflows]]
name = "flow"
binding = "FLOW"
class_name = "Flow"
"""


def write_worker_project(root: Path, entry: str) -> Path:
    """Write ``entry`` (dedented) as ``root/src/entry.py`` and the wrangler file; return its path."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "entry.py").write_text(textwrap.dedent(entry))
    (root / "wrangler.toml").write_text(ONE_WORKFLOW_TOML)
    return root / "wrangler.toml"
