"""The porting pairs of ``examples/porting/`` behave alike: each JS workflow on wrangler's
local engine (miniflare from ``node_modules``, offline) and its Python port on the emulator,
run by ``workflows-emulator compare`` with the same params, faults and events, leave equal
normalised traces (steps, attempts, rollback order, what each handler saw, final status).

Each scenario also pins what the run must show (its final status and the handlers in the
order they ran), so two sides that agreed on doing nothing would not pass. Known
differences, kept visible rather than normalised away:

- ``STEP:timeout`` (``forceStepTimeout``): wrangler's engine forces the timeout as one of
  0 ms (``Execution timed out after 0ms``); the emulator's ``force_step_timeout`` reports
  the step's configured timeout (``... after 1000ms``). Only the messages differ.

Prerequisite: ``make .build/realruntime.stamp`` (the npm tooling); without it every test
fails with the message saying so (never skips). The runs of a pair share one Node process
(`run_js` takes several runs); one more test runs the command itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator.cli.commands import main
from workflows_emulator.cli.compare_command import show, spec_from_args
from workflows_emulator.cli.parser import build_parser
from workflows_emulator.porting.compare import align
from workflows_emulator.porting.js_runner import SideResult, run_js
from workflows_emulator.porting.py_runner import run_python

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

PAIRS = Path(__file__).resolve().parents[2] / "examples" / "porting"

# (pair, workflow, compare options, expected status, expected handlers in the order run)
SCENARIOS: list[tuple[str, str, list[str], str, list[str]]] = [
    ("bank-transfer", "transfer",
     ["--params", '{"from": "alice", "to": "bob", "amount": 5000}',
      "--fault", "debit source:fail:2"],
     "errored", ["credit destination-1", "debit source-1", "reserve funds-1"]),
    ("parallel-fanout", "trip",
     ["--params", '{"trip": "t1", "items": ["flight", "hotel", "car"]}',
      "--fault", "charge card:fail"],
     "errored", ["charge card-1", "reserve car-1", "reserve hotel-1", "reserve flight-1"]),
    ("approval", "approval",
     ["--params", '{"amount": 250}', "--fault", "wait for approval:event-timeout"],
     "errored", ["hold funds-1"]),
    ("retries-timeouts", "import",
     ["--params", '{"file": "f1", "rows": [1, 2, "x"], "slowEnrichment": true}',
      "--fault", "download:fail:2"],
     "errored", ["stage rows-1"]),
    ("sleep-schedule", "reminders",
     ["--params", '{"user": "ada", "days": 3, "endsAt": "2030-01-01T00:00:00Z"}',
      "--fault", "close campaign:fail"],
     "errored", ["send reminder-3", "send reminder-2", "send reminder-1"]),
    ("d1-kv-pipeline", "pipeline",
     ["--params", '{"day": "2026-12-01", "sales": [120, 80, 45]}', "--fault", "publish:fail"],
     "errored", ["cache summary-1", "load sales-1"]),
    ("provisioning", "provision",
     ["--params", '{"name": "web1", "size": "small"}', "--fault", "health check:fail"],
     "errored", ["attach disk-1", "create vm-1", "create network-1"]),
    ("terminate-rollback", "onboarding",
     ["--params", '{"customer": "c7"}', "--terminate-rollback-at", "wait for activation"],
     "terminated", ["issue card-1", "open account-1"]),
]


# Further runs of some pairs (a key each), beside the scenarios above
EXTRA: dict[str, tuple[str, str, list[str]]] = {
    "approved": ("approval", "approval",
                 ["--params", '{"amount": 250}',
                  "--event", 'approval:{"approved": true, "by": "dana"}']),
    "forced-timeout": ("retries-timeouts", "import",
                       ["--params", '{"file": "f1", "rows": [1, 2, 3]}',
                        "--fault", "enrich:timeout"]),
}
Sides = tuple[SideResult, SideResult]


@pytest.fixture(scope="module")
def runs() -> dict[str, Sides]:
    """Every run, keyed by pair (the scenario) or EXTRA key: one Node process per pair.

    The options go through ``compare``'s own parser and `spec_from_args`, so each run is
    what ``workflows-emulator compare ... OPTIONS`` runs.
    """
    wanted = [(pair, pair, wf, opts) for pair, wf, opts, _, _ in SCENARIOS]
    wanted += [(key, pair, wf, opts) for key, (pair, wf, opts) in EXTRA.items()]
    found: dict[str, Sides] = {}
    for pair in dict.fromkeys(p for _, p, _, _ in wanted):
        mine = [(key, wf, opts) for key, p, wf, opts in wanted if p == pair]
        specs = [spec_from_args(build_parser().parse_args(
            ["compare", "--js", "-", "--js-workflow", wf, "--python", "-", "--id", key,
             *opts]), wf) for key, wf, opts in mine]
        js = run_js(PAIRS / pair / "js", specs)
        py = run_python(PAIRS / pair / "python", specs)
        found.update({key: (j, p) for (key, _, _), j, p in zip(mine, js, py, strict=True)})
    return found


def _shown(capsys: pytest.CaptureFixture[str], sides: Sides) -> tuple[int, dict[str, Any]]:
    code = show(*sides, as_json=True)
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("pair", "workflow", "options", "status", "handlers"), SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_pair_behaves_the_same(capsys: pytest.CaptureFixture[str], runs: dict[str, Sides],
                               pair: str, workflow: str, options: list[str], status: str,
                               handlers: list[str]) -> None:
    code, result = _shown(capsys, runs[pair])
    assert code == 0 and result["equal"], json.dumps(result, indent=1)[:6000]
    js = result["js"]
    assert js["status"] == status
    assert [h["step"] for h in js["rollback"]["handlers"]] == handlers
    assert all(h["saw"] for h in js["rollback"]["handlers"]), "a handler's view is missing"


def test_approval_without_rollback_is_equal_too(capsys: pytest.CaptureFixture[str],
                                                runs: dict[str, Sides]) -> None:
    code, result = _shown(capsys, runs["approved"])
    assert code == 0 and result["equal"], result["first_divergence"]
    assert result["js"]["status"] == "complete" and result["js"]["rollback"] is None
    assert result["js"]["output"] == {"approvedBy": "dana", "captured": 250, "hold": "hold-250"}


def test_a_forced_step_timeout_reads_the_same_on_both_engines(runs: dict[str, Sides]) -> None:
    js, py = runs["forced-timeout"]
    assert js.trace is not None and py.trace is not None
    assert [(r.js, r.python) for r in align(js.trace, py.trace) if not r.same] == []
    timeout = "  attempt 1: failure WorkflowTimeoutError: Execution timed out after 0ms"
    assert any(r.js == timeout for r in align(js.trace, py.trace))


def test_a_port_that_differs_is_caught(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       runs: dict[str, Sides]) -> None:
    """A port that forgot one undo: the comparison fails at the first divergence."""
    port = tmp_path / "python"
    shutil.copytree(PAIRS / "bank-transfer" / "python", port)
    entry = port / "src" / "entry.py"
    source = entry.read_text()
    entry.write_text(source.replace("                             rollback=release)",
                                    "                             )"))
    assert entry.read_text() != source
    pair, workflow, options, _, _ = SCENARIOS[0]
    spec = spec_from_args(build_parser().parse_args(
        ["compare", "--js", "-", "--js-workflow", workflow, "--python", "-", *options]),
        workflow)
    [py] = run_python(port, [spec])
    capsys.readouterr()  # the port's own prints
    code, result = _shown(capsys, (runs[pair][0], py))
    assert code == 1 and not result["equal"]
    assert result["first_divergence"]["js"] == "  handler reserve funds-1: success"
    assert result["first_divergence"]["python"] is None


def test_the_command_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    """``workflows-emulator compare`` itself, as a user runs it (its own Node process)."""
    pair, workflow, options, _, _ = SCENARIOS[0]
    code = main(["compare", "--js", str(PAIRS / pair / "js"), "--js-workflow", workflow,
                 "--python", str(PAIRS / pair / "python"), "--width", "100", *options])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0].startswith("  JS: miniflare ")
    assert "✔ the traces are equal" in out and "≠" not in out
    assert "    saw output=null error=NonRetryableError: bob's bank refused 5000" in out
