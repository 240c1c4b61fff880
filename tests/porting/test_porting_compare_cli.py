"""``workflows-emulator compare``: the side-by-side view, its exit codes, and the errors
for bad options and missing tooling (none of these needs npm)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflows_emulator.cli.commands import main
from workflows_emulator.cli.compare_command import show
from workflows_emulator.porting.compare import align, first_divergence, render, report
from workflows_emulator.porting.js_runner import SideResult
from workflows_emulator.porting.trace import Trace

PAIR = Path(__file__).resolve().parents[2] / "examples" / "porting" / "bank-transfer"


def _trace(*steps: str, status: str = "complete") -> Trace:
    return {"status": status, "output": None, "error": None, "rollback": None,
            "steps": [{"step": s, "kind": "do", "outcome": "success", "output": 1,
                       "attempts": [{"outcome": "success", "error": None}]} for s in steps]}


def test_equal_traces_show_no_mark() -> None:
    rows = align(_trace("a-1", "b-1"), _trace("a-1", "b-1"))
    assert first_divergence(rows) is None
    text = render(rows, width=30)
    assert "≠" not in text and "◀" not in text
    assert report(_trace("a-1"), _trace("a-1"))["equal"] is True


def test_an_extra_step_is_one_gap_and_marked_first() -> None:
    rows = align(_trace("a-1", "b-1"), _trace("a-1", "x-1", "b-1"))
    first = first_divergence(rows)
    assert first is not None and rows[first].js is None
    assert rows[first].python == "do x-1: success"
    text = render(rows, width=30).splitlines()
    marked = [line for line in text if line.startswith("≠")]
    assert len(marked) == 3  # the step, its attempt and its output, opposite gaps
    assert marked[0].endswith("◀ first divergence") and "·" in marked[0]
    assert sum("◀" in line for line in text) == 1
    assert text[-4].startswith("  do b-1: success")  # the rest lines up again
    found = report(_trace("a-1"), _trace("a-1", status="errored"))
    assert found["first_divergence"] == {"row": 0, "js": "status: complete",
                                         "python": "status: errored"}


def test_show_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    same, other = SideResult(trace=_trace("a-1")), SideResult(trace=_trace("b-1"))
    assert show(same, same) == 0
    assert "✔ the traces are equal" in capsys.readouterr().out
    assert show(same, other) == 1
    assert "✘ the traces differ" in capsys.readouterr().out
    assert show(same, other, as_json=True) == 1
    assert json.loads(capsys.readouterr().out)["equal"] is False
    assert show(SideResult(error="JS side: boom"), same) == 2
    assert "✘ JS side: boom" in capsys.readouterr().out


def _run(capsys: pytest.CaptureFixture[str], *args: str, js: Path | str = PAIR / "js",
         workflow: str = "transfer") -> tuple[int, str]:
    code = main(["compare", "--js", str(js), "--js-workflow", workflow,
                 "--python", str(PAIR / "python"), *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("option", "wanted"), [
    (["--fault", "charge"], 'expected STEP:fail, STEP:fail:N, STEP:timeout[:N]'),
    (["--fault", "charge:explode"], "expected STEP:fail"),
    (["--fault", "wait:event-timeout:2"], "an event timeout takes no count"),
    (["--fault", "charge:fail:0"], "at least 1"),
    (["--params", "{not json"], "--params: not valid JSON"),
    (["--event", ":{}"], "expected TYPE or TYPE:JSON"),
    (["--event", "approval:{bad"], '--event "approval:{bad": not valid JSON'),
])
def test_bad_options_say_what_is_expected(capsys: pytest.CaptureFixture[str],
                                          option: list[str], wanted: str) -> None:
    code, err = _run(capsys, *option)
    assert code == 1
    assert err.startswith("✘ [ERROR] ") and wanted in err


def test_a_missing_or_wrong_js_project(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    code, err = _run(capsys, js=tmp_path / "nowhere")
    assert code == 1 and "no such file or folder; pass the JS project's folder to --js" in err
    code, err = _run(capsys, js=tmp_path)
    assert code == 1 and "no wrangler.jsonc, wrangler.json or wrangler.toml here" in err
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "index.ts").write_text("export class W {}\n")
    (tmp_path / "wrangler.jsonc").write_text('{"main": "src/index.ts", "workflows": []}')
    code, err = _run(capsys, js=tmp_path)
    assert code == 1 and "compare runs plain JS modules (.js or .mjs)" in err
    code, err = _run(capsys, workflow="nope")
    assert code == 1 and 'no workflow named "nope"' in err and "(known: transfer)" in err


def test_a_wrong_python_project_fails_before_node_starts(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    code, err = _run(capsys, "--python-workflow", "nope")
    assert code == 1 and 'no workflow named "nope" in [[workflows]] (known: transfer)' in err
    code = main(["compare", "--js", str(PAIR / "js"), "--js-workflow", "transfer",
                 "--python", str(tmp_path)])
    assert code == 1 and "no wrangler.toml or wrangler.jsonc here" in capsys.readouterr().err


def test_missing_npm_tooling_says_how_to_install_it(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "js"
    project.mkdir()
    (project / "index.js").write_text("export class W {}\n")
    (project / "wrangler.jsonc").write_text(
        '{"main": "index.js", "workflows": [{"name": "w", "binding": "W", "class_name": "W"}]}')
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, "--python-workflow", "transfer", js=project, workflow="w")
    assert code == 1
    assert "wrangler's local engine (miniflare) was not found" in err
    assert "npm i -D wrangler" in err and "make .build/realruntime.stamp" in err


def test_help_documents_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    for option in ("--js ", "--js-workflow", "--python ", "--python-workflow", "--params",
                   "--fault", "--event", "--terminate-rollback-at", "--keep-delays", "--json",
                   "STEP:fail:N", "STEP:event-timeout", "exit status: 0"):
        assert option in text


def test_a_fault_for_a_step_that_never_ran_is_reported() -> None:
    from workflows_emulator.cli.compare_command import parse_fault, unmatched_faults
    from workflows_emulator.porting.js_runner import SideResult

    ran = {"status": "complete", "steps": [{"step": "debit source-1"}, {"step": "credit-1"}]}
    side = SideResult(engine="x", trace=ran)
    typo, right = parse_fault("debit:fail:2"), parse_fault("debit source:fail:2")
    assert unmatched_faults((typo, right), side, side) == [(typo, "credit-1, debit source-1")]
