"""benchmarks/gc_cost.py at toy sizes: it runs each instance in its own interpreter and reports
what the collector cost and what the instance keeps. No figure is checked against a target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks.gc_cost", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_rows_for_each_scenario_and_size_with_what_a_rollback_keeps(tmp_path: Path) -> None:
    proc = _run("--sizes", "200,400", "--json", "--tmp", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert [(r["scenario"], r["n"]) for r in rows] == [
        ("sequential", 200), ("sequential", 400), ("rollback", 200), ("rollback", 400)]
    for row in rows:
        assert row["wall_us"] > 0 and row["gc_us"] >= 0
        assert len(row["collections"]) == 3 and all(c >= 0 for c in row["collections"])
    kept = {(r["scenario"], r["n"]): r["kept_per_step"] * r["n"] for r in rows}

    def per_extra_step(scenario: str) -> float:
        # Between two sizes, so what an instance keeps whatever its size (and caches that
        # warm up at small sizes) cancels out: about 1 and 4.
        return (kept[scenario, 400] - kept[scenario, 200]) / 200

    # A finished instance keeps a row per step (its log folded in memory; the attempts in
    # it are tuples the collector no longer tracks); a rolled-back one also keeps a row per
    # handler, and each handler with its options.
    assert 0.5 <= per_extra_step("sequential") < 2
    assert per_extra_step("rollback") > per_extra_step("sequential") + 2
    assert not list(tmp_path.iterdir()), "a run left its state behind"


def test_the_table_names_its_columns() -> None:
    proc = _run("--sizes", "10", "--scenarios", "sequential")
    assert proc.returncode == 0, proc.stderr[-2000:]
    header, row = proc.stdout.splitlines()
    assert header.split() == ["scenario", "N", "wall", "us/step", "gc", "us/step",
                              "collections", "0/1/2", "kept/step"]
    assert row.split()[:2] == ["sequential", "10"]


def test_an_unknown_scenario_is_refused_with_the_choices() -> None:
    proc = _run("--scenarios", "parallel")
    assert proc.returncode == 2
    assert "unknown scenario parallel: choose from sequential, rollback" in proc.stderr
