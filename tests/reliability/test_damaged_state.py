"""Damaged state is isolated: a bad instance file is reported and never stops the rest; a bad
or missing index is rebuilt from the instance files (they are the truth)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator import DamagedStateError, Emulator, EmulatorError
from workflows_saga import WorkflowEntrypoint

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("workflows-emulator")


class Napper(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1)
        await step.sleep("nap", "1 hour")
        return await step.do("b", lambda: "done")


def empty(path: Path) -> None:
    path.write_bytes(b"")


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not SQLite at all " * 200)


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:1500])  # the header survives, the pages it points to do not


def other_version(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "empty": empty, "garbage": garbage, "truncated": truncated, "other-version": other_version}
REASON = {"empty": "empty or holds no workflows-emulator tables",
          "garbage": "damaged or is not a workflows-emulator state file",
          "truncated": "damaged or is not a workflows-emulator state file",
          "other-version": "schema version 99"}


async def make_state(state: Path) -> None:
    """Four finished instances (``bad`` will be damaged) and one napping (``late``)."""
    async with Emulator(state) as emu:
        wf = emu.workflow(Napper, name="napper")
        for iid in ("bad", "good", "other"):
            await (await wf.create(id=iid)).wait(until="waiting")
        done = await wf.create(id="done")
        await emu.advance("1 hour")
        assert (await done.status())["status"] == "complete"
        await wf.create(id="late")
        await (await wf.get("late")).wait(until="waiting")


@pytest.mark.parametrize("kind", sorted(DAMAGE))
async def test_a_damaged_instance_file_is_reported_and_stops_nothing(tmp_path: Path, kind: str) -> None:
    state = tmp_path / "state"
    await make_state(state)
    bad = state / "instances" / "napper" / "bad.sqlite"
    DAMAGE[kind](bad)

    async with Emulator(state) as emu:
        wf = emu.workflow(Napper, name="napper")  # resumes the others
        rows = {r["id"]: r for r in await wf.list()}
        assert rows["bad"]["status"] == "unknown" and REASON[kind] in rows["bad"]["problem"]
        assert all("problem" not in r for i, r in rows.items() if i != "bad")
        inst = await wf.get("bad")
        with pytest.raises(EmulatorError) as caught:
            await inst.status()
        assert str(bad) in str(caught.value)
        if kind != "other-version":
            assert isinstance(caught.value, DamagedStateError)
            assert "workflows-emulator doctor" in str(caught.value)
        late = await wf.get("late")
        assert (await late.wait())["status"] == "complete"  # the rest carries on
        fresh = await wf.create(id="fresh")
        assert (await fresh.wait())["status"] == "complete"
        assert {r["id"]: r["status"] for r in await wf.list()} == {
            "bad": "unknown", "good": "complete", "other": "complete", "done": "complete",
            "late": "complete", "fresh": "complete"}

    # doctor names it, sets it aside, and the directory is whole again
    report = subprocess.run([str(SCRIPT), "doctor", "--persist-to", str(state), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 1
    problems = json.loads(report.stdout)["problems"]
    assert [(p["workflow"], p["id"]) for p in problems] == [("napper", "bad")]
    assert REASON[kind] in problems[0]["problem"]
    fixed = subprocess.run([str(SCRIPT), "doctor", "--persist-to", str(state), "--quarantine"],
                           capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Every state file can be read" in fixed.stdout
    assert not bad.exists() and list((state / "quarantine" / "napper").glob("bad.*.sqlite"))
    async with Emulator(state) as emu:
        ids = [r["id"] for r in await emu.workflow(Napper, name="napper").list()]
    assert sorted(ids) == ["done", "fresh", "good", "late", "other"]


def remove(path: Path) -> None:
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


INDEX_DAMAGE: dict[str, Callable[[Path], None]] = {**DAMAGE, "missing": remove}


@pytest.mark.parametrize("kind", sorted(INDEX_DAMAGE))
async def test_a_bad_or_missing_index_is_rebuilt_from_the_instance_files(
        tmp_path: Path, kind: str) -> None:
    state = tmp_path / "state"
    await make_state(state)
    INDEX_DAMAGE[kind](state / "index.sqlite")
    async with Emulator(state) as emu:
        wf = emu.workflow(Napper, name="napper")
        statuses = {r["id"]: r["status"] for r in await wf.list()}
        assert statuses == {"bad": "complete", "good": "complete", "other": "complete",
                            "done": "complete", "late": "waiting"}
        late = await wf.get("late")  # the unfinished one was found and resumed
        assert (await late.wait())["status"] == "complete"
    set_aside = list((state / "quarantine" / "index").glob("index.*.sqlite"))
    assert (set_aside == []) == (kind == "missing")


async def test_the_index_drops_entries_whose_file_is_gone_and_adds_unindexed_files(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    await make_state(state)
    remove(state / "instances" / "napper" / "other.sqlite")
    conn = sqlite3.connect(state / "index.sqlite")
    conn.execute("DELETE FROM instances WHERE id = 'good'")
    conn.commit()
    conn.close()
    async with Emulator(state) as emu:
        ids = sorted(r["id"] for r in await emu.workflow(Napper, name="napper").list())
    assert ids == ["bad", "done", "good", "late"]
