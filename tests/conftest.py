"""Shared fixtures: ``emu`` is the plugin's ``workflows_emulator`` fixture under a short name."""

from __future__ import annotations

import pytest

from workflows_emulator import Emulator


@pytest.fixture
def emu(workflows_emulator: Emulator) -> Emulator:
    return workflows_emulator
