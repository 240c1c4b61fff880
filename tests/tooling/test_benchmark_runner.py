"""benchmarks/run.py (``make bench``) at toy sizes: it runs, and its table and JSON are well formed.

No timing is checked: the suite is for reading, never a gate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOY = ["--repeat", "1", "--steps", "10", "--rollback-steps", "10", "--parallel", "5",
       "--instances", "5", "--describe-steps", "10", "--no-wrangler"]


def _run(*extra: str, tmp: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", *TOY, "--tmp", str(tmp), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_plain_table_has_every_default_row_and_the_floors(tmp_path: Path) -> None:
    out = _run("--json", str(tmp_path / "bench.json"), tmp=tmp_path)
    lines = out.splitlines()
    assert lines[0].startswith("Machine: ") and "SQLite" in lines[0]
    assert "2 SQLite commits" in lines[1] and "an empty file alone" in lines[1]
    header = next(i for i, line in enumerate(lines) if line.startswith("scenario"))
    assert lines[header].split() == ["scenario", "unit", "emulator", "floor", "emu/floor",
                                     "wrangler", "wrangler/emu"]
    labels = [line.split("  ")[0] for line in lines[header + 2:] if line and line[1] == ")"]
    assert [label[:2] for label in labels] == ["a)", "b)", "c)", "d)", "d)", "e)"]
    assert "n/a on wrangler: --no-wrangler" in out

    doc = json.loads((tmp_path / "bench.json").read_text())
    keys = [row["key"] for row in doc["rows"]]
    assert keys == ["sequential-10", "rollback-10", "parallel-5", "one-by-one-5", "at-once-5",
                    "sleep-30-days", "describe-time-10", "describe-rss-10"]
    for row in doc["rows"]:
        assert len(row["emulator"]["samples"]) == 1 and row["emulator"]["median"] > 0
        assert row["wrangler"]["samples"] == [] and row["wrangler"]["note"]
        if row["floor"]["kind"] is not None:
            assert row["floor"]["emulator_ratio"] > 0
    assert set(doc["floors_us"]) == {"1 commit", "2 commits", "new file", "empty file",
                                    "fsync"}
    assert not list(tmp_path.glob("workflows-bench-*")), "the run left its state behind"

    shown_again = subprocess.run([sys.executable, "-m", "benchmarks.run", "--render", str(tmp_path / "bench.json")],
                                 cwd=REPO, capture_output=True, text=True, timeout=60)
    assert shown_again.stdout == out


def test_markdown_output_is_a_table(tmp_path: Path) -> None:
    out = _run("--markdown", tmp=tmp_path)
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0] == "| scenario | unit | emulator | floor | emu/floor | wrangler | wrangler/emu |"
    assert table[1] == "|---|---|---|---|---|---|---|"
    assert all(line.count(" | ") == 6 for line in table[2:]), table
    assert len(table) == 2 + 8


def test_peak_rss_is_the_child_s_own_not_its_parent_s(tmp_path: Path) -> None:
    # A parent holding 200 MB starts a child that touches 40 MB: ``wait4`` would say 200+.
    (tmp_path / "forty.py").write_text("block = bytearray(40_000_000)\nblock[::4096] = b'x' * "
                                       "len(block[::4096])\n")
    held = bytearray(200_000_000)
    held[::4096] = b"y" * len(held[::4096])
    out = tmp_path / "peak"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    subprocess.run([sys.executable, "-m", "benchmarks.peak_rss", str(out), "forty"],
                   env=env, check=True, timeout=60)
    peak_mb = int(out.read_text()) * 1024 / 1e6
    assert 40 < peak_mb < 120
    del held
