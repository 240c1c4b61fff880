"""Code blocks of the README that tests run as a user would copy them."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The first line of the README's complete approval-flow test file.
APPROVAL_TEST_START = "from workflows_saga import WorkflowEntrypoint\n\nreleased"
# The README's marker-and-settle sample, which continues the approval file.
SETTLE_TEST_START = "import pytest\n\n@pytest.mark.workflows_emulator("
# The testing toolkit's samples: Emulator without the fixture, the precise waits and the
# assertions, a test of an unmodified project, and load_test_project outside pytest.
EMULATOR_TEST_START = "import pytest\nfrom workflows_emulator import Emulator\n"
BOOKING_TEST_START = "from workflows_emulator.testing import assert_rolled_back, assert_step_trace\n"
PROJECT_TEST_START = "from workflows_emulator.testing import assert_rolled_back\n\n\nasync def test_a_"
LOAD_PROJECT_START = "import asyncio\n\nfrom workflows_emulator.testing import load_test_project\n"
INTROSPECTION_TEST_START = "from workflows_emulator.testing import introspect_workflow_instance\n"
CRASH_TEST_START = "from workflows_emulator import Emulator\nfrom workflows_saga import WorkflowEntrypoint\n\ncharged"
README_TESTS = 9
"""How many tests `write_readme_samples` writes (3 approval, 1 emulator, 2 booking, 1 project,
1 introspection, 1 crash)."""


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


def write_readme_samples(directory: Path) -> Path:
    """A fresh pytest project holding every test sample of the README as a user would copy them
    (strict asyncio mode, no configuration of ours), plus the transfer project they test and
    the `load_test_project` script as ``load_project_sample.py``."""
    write_approval_project(directory)
    (directory / "test_emulator.py").write_text(readme_block(EMULATOR_TEST_START))
    (directory / "test_booking.py").write_text(readme_block(BOOKING_TEST_START))
    (directory / "test_moderate.py").write_text(readme_block(INTROSPECTION_TEST_START))
    (directory / "test_crash.py").write_text(readme_block(CRASH_TEST_START))
    project = directory / "examples" / "transfer-project"
    shutil.copytree(REPO / "examples" / "transfer-project", project)
    (project / "tests").mkdir()
    (project / "tests" / "test_transfer.py").write_text(readme_block(PROJECT_TEST_START))
    (directory / "load_project_sample.py").write_text(readme_block(LOAD_PROJECT_START))
    return directory
