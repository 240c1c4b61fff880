"""Fixtures for the testing toolkit's tests: real Worker projects in the test's tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testing.projects import write_shop

ROOT = Path(__file__).resolve().parents[2]
TRANSFER_PROJECT = ROOT / "examples" / "transfer-project"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """The shop project's wrangler file, in the test's tmp_path."""
    return write_shop(tmp_path / "shop")


@pytest.fixture
def transfer_project(tmp_path: Path) -> Path:
    """A copy of examples/transfer-project; its wrangler file."""
    copy = tmp_path / "transfer-project"
    shutil.copytree(TRANSFER_PROJECT, copy)
    return copy / "wrangler.toml"
