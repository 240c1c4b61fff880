"""The results of one run and how they are shown: a plain table, Markdown, or JSON.

Per row: the emulator's median, the floor's median, the emulator over the floor (the median
of each repetition's ratio to the floor measured in that repetition, so drift cancels),
wrangler's median and wrangler over the emulator (ratio of medians).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from .scenarios import Scenario


@dataclass
class Row:
    """One scenario's samples: the emulator's, the floor's (paired by repetition), wrangler's."""

    scenario: Scenario
    emulator: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    wrangler: list[float] = field(default_factory=list)
    emulator_note: str | None = None
    wrangler_note: str | None = None

    @property
    def emulator_median(self) -> float | None:
        return statistics.median(self.emulator) if self.emulator else None

    @property
    def floor_median(self) -> float | None:
        return statistics.median(self.floor) if self.floor else None

    @property
    def floor_ratio(self) -> float | None:
        if not self.floor or len(self.floor) != len(self.emulator):
            return None
        return statistics.median(e / f for e, f in zip(self.emulator, self.floor, strict=True))

    @property
    def wrangler_median(self) -> float | None:
        return statistics.median(self.wrangler) if self.wrangler else None

    @property
    def wrangler_ratio(self) -> float | None:
        emu, wr = self.emulator_median, self.wrangler_median
        return wr / emu if emu and wr is not None else None


@dataclass
class Report:
    """Everything one run measured, with what it ran on."""

    machine: dict[str, str]
    floors: dict[str, float]
    rows: list[Row]
    repeat: int
    notes: list[str] = field(default_factory=list)

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.scenario.key == key), None)


def number(value: float | None, unit: str = "") -> str:
    """A figure as the table shows it: thousands separators, decimals only where they matter."""
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.2f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


HEADER = ("scenario", "unit", "emulator", "floor", "emu/floor", "wrangler", "wrangler/emu")


def _cells(row: Row) -> tuple[str, ...]:
    unit = row.scenario.unit
    floor = f"{number(row.floor_median)} ({row.scenario.floor})" if row.floor else "—"
    emulator = number(row.emulator_median, unit) if row.emulator else f"n/a: {row.emulator_note}"
    wrangler = number(row.wrangler_median, unit) if row.wrangler else f"n/a: {row.wrangler_note}"
    return (row.scenario.label, unit, emulator, floor, ratio(row.floor_ratio), wrangler,
            ratio(row.wrangler_ratio))


def _preamble(report: Report) -> list[str]:
    m = report.machine
    f = report.floors
    return [
        f"Machine: {m['machine']}; {m['python']}, SQLite {m['sqlite']}; {m['wrangler']}; {m['date']}.",
        f"Medians of {report.repeat} repetitions. Floors measured in this run, same disk: "
        f"2 SQLite commits {number(f.get('2 commits'))} µs, 1 commit {number(f.get('1 commit'))} µs "
        f"(WAL + synchronous=NORMAL, 200-byte row); new SQLite file {number(f.get('new file'))} µs, "
        f"of which an empty file alone {number(f.get('empty file'))} µs; "
        f"4 KiB write + fsync {number(f.get('fsync'))} µs. emu/floor is the median of each "
        "repetition's ratio to the floor measured just before it (so disk drift cancels), not "
        "the ratio of the two medians shown; wrangler/emu is the ratio of the medians.",
    ]


def plain(report: Report) -> str:
    """The table for a terminal: fixed-width columns, long reasons on their own lines."""
    rows = [_cells(r) for r in report.rows]
    short = [tuple(c if not c.startswith("n/a: ") else "n/a" for c in cells) for cells in rows]
    widths = [max(len(h), *(len(c[i]) for c in short)) for i, h in enumerate(HEADER)]
    out = [*_preamble(report), ""]
    out.append("  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    for cells in short:
        out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    reasons: dict[str, list[str]] = {}
    for cells in rows:
        for i, engine in ((2, "emulator"), (5, "wrangler")):
            if cells[i].startswith("n/a: "):
                reasons.setdefault(f"{engine}: {cells[i][5:]}", []).append(cells[0].split(", N=")[0])
    if reasons:
        out.append("")
        out += [f"n/a on {why} — {'; '.join(dict.fromkeys(labels))}" for why, labels in reasons.items()]
    if report.notes:
        out.append("")
        out += report.notes
    return "\n".join(out)


def markdown(report: Report) -> str:
    """The same as a Markdown table, for the README."""
    out = [*_preamble(report), "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in report.rows:
        cells = [c.replace("|", "\\|") for c in _cells(r)]
        out.append("| " + " | ".join(cells) + " |")
    if report.notes:
        out += [""] + [f"- {n}" for n in report.notes]
    return "\n".join(out)


def as_json(report: Report) -> str:
    """Every sample, median and ratio, for tools."""
    doc: dict[str, Any] = {
        "machine": report.machine, "repeat": report.repeat, "floors_us": report.floors,
        "notes": report.notes,
        "rows": [{
            "key": r.scenario.key, "label": r.scenario.label, "unit": r.scenario.unit,
            "kind": r.scenario.kind, "n": r.scenario.n,
            "emulator": {"samples": r.emulator, "median": r.emulator_median, "note": r.emulator_note},
            "floor": {"kind": r.scenario.floor, "samples": r.floor, "median": r.floor_median,
                      "emulator_ratio": r.floor_ratio},
            "wrangler": {"samples": r.wrangler, "median": r.wrangler_median, "note": r.wrangler_note,
                         "ratio_to_emulator": r.wrangler_ratio},
        } for r in report.rows],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def from_json(text: str) -> Report:
    """A report saved with ``--json``, to show it again (``--render``)."""
    doc = json.loads(text)
    rows = []
    for r in doc["rows"]:
        scenario = Scenario(r["key"], r["label"], r["unit"], r["kind"], r["n"], r["floor"]["kind"],
                            r["wrangler"]["note"])
        rows.append(Row(scenario, r["emulator"]["samples"], r["floor"]["samples"],
                        r["wrangler"]["samples"], r["emulator"]["note"], r["wrangler"]["note"]))
    return Report(doc["machine"], doc["floors_us"], rows, doc["repeat"], doc["notes"])
