"""Code blocks of the README that tests run as a user would copy them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The first line of the README's complete approval-flow test file.
APPROVAL_TEST_START = "from workflows_saga import WorkflowEntrypoint\n\nreleased"
# The README's marker-and-settle sample, which continues the approval file.
SETTLE_TEST_START = "import pytest\n\n@pytest.mark.workflows_emulator("


def readme_block(start: str) -> str:
    """The README text from ``start`` up to the end of its fenced code block."""
    text = (REPO / "README.md").read_text()
    i = text.index(start)
    return text[i : text.index("```", i)]


def write_approval_project(directory: Path) -> Path:
    """A fresh pytest project holding only the README's approval test file and its settle sample
    (strict asyncio mode)."""
    (directory / "test_approval.py").write_text(
        readme_block(APPROVAL_TEST_START) + "\n\n" + readme_block(SETTLE_TEST_START))
    (directory / "pytest.ini").write_text("[pytest]\n")  # no configuration of ours
    return directory
