"""``workflows-emulator replay``: the stored instances checked against changed code."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from worker_projects import write_worker_project
from workflows_emulator.cli.commands import main

CODE = """
    from workers import WorkflowEntrypoint

    class Flow(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("{first}")
            async def first():
                return 1

            await first()
            await step.sleep("nap", "3 days")

            @step.do("last")
            async def last():
                return 2

            return await last()
"""


def _project(root: Path, first: str) -> Path:
    return write_worker_project(root, textwrap.dedent(CODE).replace("{first}", first))


def _stored_sleeper(tmp_path: Path) -> tuple[Path, Path]:
    """The project (first step "charge") and a state holding instance "sleeper" asleep in it."""
    config = _project(tmp_path / "p", "charge")
    state = tmp_path / "state"
    assert main(["workflows", "trigger", "flow", "--id", "sleeper", "--timers-within", "0",
                 "--config", str(config), "--persist-to", str(state)]) == 0
    return config, state


def test_replay_passes_the_same_code_and_names_a_renamed_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, state = _stored_sleeper(tmp_path)
    capsys.readouterr()
    before = sorted(p.read_bytes() for p in state.rglob("*.sqlite"))

    assert main(["replay", str(state), "--config", str(config)]) == 0
    assert "✔ flow/sleeper: replays as logged" in capsys.readouterr().out

    _project(tmp_path / "p", "bill")  # the step renamed in the code to deploy
    assert main(["replay", str(state), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "✘ flow/sleeper: instance sleeper of \"flow\" is not deterministic" in out
    assert "asked for step.do 'bill' where the log has step.do 'charge'" in out
    assert "1 instance(s) checked, 1 not replayed as logged" in out

    assert main(["replay", str(state), "--config", str(config), "--json"]) == 1
    (found,) = json.loads(capsys.readouterr().out)
    assert found["ok"] is False and found["status"] == "waiting"
    # the state directory was only read
    assert sorted(p.read_bytes() for p in state.rglob("*.sqlite")) == before


def test_replay_of_a_folder_without_instances_says_what_to_pass(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _project(tmp_path / "p", "charge")
    assert main(["replay", str(tmp_path / "nowhere"), "--config", str(config)]) == 1
    assert "holds no instances" in capsys.readouterr().err


def test_the_readme_shows_the_message_replay_prints(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from readme_blocks import readme_block

    config, state = _stored_sleeper(tmp_path)
    _project(tmp_path / "p", "bill")
    capsys.readouterr()
    assert main(["replay", str(state), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    for line in readme_block('instance sleeper of "flow"').strip().splitlines():
        assert line in out, (line, out)


def test_replay_with_another_project_names_the_instances_it_cannot_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, state = _stored_sleeper(tmp_path)
    other = tmp_path / "other"
    (other / "src").mkdir(parents=True)
    (other / "src" / "entry.py").write_text("x = 1\n")
    (other / "wrangler.toml").write_text(
        'main = "src/entry.py"\ncompatibility_date = "2026-03-01"\n'
        'compatibility_flags = ["python_workers"]\n')
    capsys.readouterr()
    assert main(["replay", str(state), "--config", str(other / "wrangler.toml")]) == 1
    out = capsys.readouterr().out
    assert '✘ flow/sleeper: the project' in out and 'has no workflow "flow"' in out
    assert "1 instance(s) checked, 1 not replayed as logged" in out
