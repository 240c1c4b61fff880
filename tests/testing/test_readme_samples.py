"""The README's testing samples, copied verbatim into a fresh project and run as a user runs
them (pytest in a subprocess, strict asyncio mode, no configuration of ours); the packaging
test runs the same files from the two wheels in a fresh venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from readme_blocks import BOOKING_TEST_START, README_TESTS, readme_block, write_readme_samples
from testing.projects import run_pytest
from workflows_emulator import Emulator
from workflows_emulator.testing import assert_rolled_back


def test_the_readme_test_samples_pass_verbatim_without_warnings(tmp_path: Path) -> None:
    write_readme_samples(tmp_path)
    run = run_pytest(tmp_path, "-q")
    assert run.returncode == 0, run.output
    assert f"{README_TESTS} passed" in run.output, run.output
    assert "warning" not in run.output.lower(), run.output


def test_the_readme_load_test_project_script_prints_the_transfer(tmp_path: Path) -> None:
    write_readme_samples(tmp_path)
    out = subprocess.run([sys.executable, "load_project_sample.py"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120, check=True).stdout
    assert out.strip() == "{'account': 'bob', 'amount': 10}"


async def test_the_readme_s_failure_message_is_the_one_assert_rolled_back_gives(
        workflows_emulator: Emulator) -> None:
    sample: dict[str, Any] = {}
    exec(compile(readme_block(BOOKING_TEST_START), "README.md", "exec"), sample)
    inst = await workflows_emulator.workflow(sample["Booking"]).create(id="b-1", params={})
    await inst.wait_for_event_wait("paid")
    await inst.send_event("paid", {"amount": 80})
    await inst.wait()
    with pytest.raises(AssertionError) as caught:
        assert_rolled_back(inst, ["reserve seat", "reserve room"])
    shown = readme_block("AssertionError: the rollback of instance 'b-1'").strip()
    assert f"AssertionError: {caught.value}" == shown
