"""The read-only ``describe`` path: what it loads, how it runs without an event loop, and
that its shortcuts (the parser's subtree, orjson decoding, the fold's role table) change
nothing a user sees."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator.cli.client import run_to_end
from workflows_emulator.cli.parser import build_parser
from workflows_emulator.log_fold import StepRow, fold
from workflows_emulator.records import LogEvent
from workflows_emulator.values import loads
from workflows_saga.backend import ErrorRecord

from .conftest import EXAMPLE, run_cli

# What ``instances describe`` has no use for: the engine and the Worker shim, the dev
# server, the other commands and what only they read.
NOT_FOR_DESCRIBE = (
    "workflows_emulator.engine", "workflows_emulator.emulator", "workflows_emulator.workers_shim",
    "workflows_emulator.bindings.doubles", "workflows_emulator.bindings.d1",
    "workflows_emulator.devserver.server", "workflows_emulator.devserver.http_transport",
    "workflows_emulator.porting", "workflows_emulator.instance_index",
    "workflows_emulator.cli.d1_commands", "workflows_emulator.cli.compare_command",
    "workflows_emulator.cli.store_commands", "workflows_emulator.cli.replay_command",
    "workflows_emulator.cli.time_commands", "aiohttp", "json5", "dotenv", "urllib.request",
    "asyncio", "workflows_saga._step", "workflows_saga._eager",
)
PROBE = """
import json, sys
from workflows_emulator.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def _wf(state: Path) -> list[str]:
    return ["--config", str(EXAMPLE), "--persist-to", str(state)]


def test_describe_loads_neither_the_engine_nor_the_other_commands(state: Path) -> None:
    r = run_cli("workflows", "trigger", "transfer", '{"from": "a", "to": "b", "amount": 5000}',
                "--id", "t-1", *_wf(state))
    assert r.code == 0, r.err
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "workflows", "instances", "describe", "transfer", "t-1",
         "--json", *_wf(state)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    described = json.loads(proc.stdout)
    assert (described["id"], described["status"]) == ("t-1", "errored")
    assert described["rollback_phase"]["outcome"] == "complete"
    loaded = json.loads(proc.stderr.splitlines()[-1])
    assert [m for m in loaded
            if any(m == name or m.startswith(name + ".") for name in NOT_FOR_DESCRIBE)] == []


MAIN_PROBE = """
import gc, runpy, sys
import workflows_emulator.cli.commands as commands
cli_main = commands.main
def main():  # the real main, told what the collector was doing when it was called
    print(gc.isenabled(), gc.get_freeze_count() > 0, file=sys.stderr)
    return cli_main()
commands.main = main
sys.argv[0] = "workflows_emulator"
runpy.run_module("workflows_emulator", run_name="__main__")
"""


def test_python_m_runs_main_with_the_collector_on_and_the_cli_modules_frozen(
        state: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", MAIN_PROBE, "workflows", "instances", "list", "transfer",
         "--json", *_wf(state)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    assert proc.stderr.split() == ["True", "True"]


# -- run_to_end: a snapshot's coroutine, without an event loop --------------------------------


def test_run_to_end_returns_what_the_coroutine_returns() -> None:
    async def inner() -> int:
        return 41

    async def outer() -> int:
        return await inner() + 1

    assert run_to_end(outer()) == 42


def test_run_to_end_passes_on_what_the_coroutine_raises() -> None:
    async def fails() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        run_to_end(fails())


def test_run_to_end_refuses_a_coroutine_that_waits() -> None:
    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="waited for something"):
        run_to_end(waits())


# -- the parser builds only the named command's subtree ---------------------------------------

COMMANDS = ("dev", "doctor", "workflows", "kv", "r2", "d1", "replay", "time", "compare")


@pytest.mark.parametrize("argv", [
    ["workflows", "instances", "describe", "wf", "some-id", "--json", "--persist-to", "s"],
    ["workflows", "instances", "describe", "wf"],
    ["workflows", "instances", "describe", "wf", "--no-step-output",
     "--truncate-output-limit", "10", "--local", "--port", "9000"],
    ["workflows", "instances", "list", "wf", "--status", "complete", "--reverse"],
    ["workflows", "instances", "restart", "wf", "i", "--from-step-name", "s"],
    ["workflows", "trigger", "wf", '{"a": 1}', "--id", "x"],
    ["workflows", "list", "--json"],
    ["dev", "--port", "0", "--virtual-clock"],
    ["doctor", "--quarantine"],
])
def test_a_named_command_parses_as_with_the_whole_tree(argv: list[str]) -> None:
    assert vars(build_parser(argv).parse_args(argv)) == vars(build_parser().parse_args(argv))


def _outcome(argv: list[str], whole: bool, capsys: pytest.CaptureFixture[str]) -> Any:
    parser = build_parser() if whole else build_parser(argv)
    try:
        parsed = vars(parser.parse_args(argv))
    except SystemExit as exited:
        return exited.code, capsys.readouterr()
    return parsed


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("rest", [["--help"], [], ["--no-such-option"]])
def test_a_named_commands_help_and_errors_are_the_whole_trees(
        command: str, rest: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, *rest]
    assert _outcome(argv, False, capsys) == _outcome(argv, True, capsys)


@pytest.mark.parametrize("argv", [[], ["--help"], ["no-such-command"], ["-h", "workflows"]])
def test_without_a_command_name_first_the_whole_tree_is_built(argv: list[str]) -> None:
    top = build_parser(argv)._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert tuple(top.choices) == COMMANDS  # type: ignore[attr-defined]


# -- values.loads: orjson where it gives what the standard library gives ----------------------

STDLIB = json.JSONDecoder()


@pytest.mark.parametrize("text", [
    '{"kind": "do", "name": "s", "count": 1, "seq": 0, "config": {"retries": {"limit": 5}}}',
    '{"output": [1, 2.5, -0.0, 0.1, 1e-400, 5e-324, 1.7976931348623157e308, 1e22]}',
    # integers beyond 64 bits: orjson would read them as floats
    '{"n": 18446744073709551616, "m": -9223372036854775809, "k": 123456789012345678901234}',
    '[9223372036854775807, -9223372036854775808, 18446744073709551615]',
    '{"s": "12345678901234567890 digits in a string", "n": 7}',
    # what orjson refuses and the standard library reads
    '[NaN, Infinity, -Infinity]', '[1e400]', '["\\ud800 a lone surrogate"]',
    '{"a": 1, "a": 2}', '"h\\u00e9llo ✓ 😀"', '"😀 ✓"', "null", "[]", " {} ",
])
def test_loads_reads_a_value_as_the_standard_library_does(text: str) -> None:
    expected = STDLIB.decode(text)
    # repr: an int stays an int, -0.0 stays negative, NaN compares equal
    assert repr(loads(text)) == repr(expected)
    assert repr(loads(text.encode("utf-8", "surrogatepass"))) == repr(expected)


def test_loads_restores_a_tagged_date() -> None:
    assert loads('{"when": {"$workflows-emulator:date": 86400000}}') == {
        "when": datetime(1970, 1, 2)}


@pytest.mark.parametrize("text", ["[1] x", "{'a': 1}", "[1,]", "", '"\x01"'])
def test_loads_refuses_what_the_standard_library_refuses_with_its_message(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        STDLIB.decode(text)
    with pytest.raises(json.JSONDecodeError) as got:
        loads(text)
    assert str(got.value) == str(expected.value)


def test_loads_of_nesting_deeper_than_the_recursion_limit_fails_as_before() -> None:
    with pytest.raises(RecursionError):
        loads("[" * 100_000 + "]" * 100_000)


# -- fold: the same rows from the log's plain names and from the engine's LogEvent members ----


def _log() -> list[tuple[str, str | None, float, int | None, dict[str, Any] | None]]:
    def start(kind: str, name: str, seq: int, **extra: Any) -> dict[str, Any]:
        return {"kind": kind, "name": name, "count": 1, "seq": seq, "config": None, **extra}

    error = {"name": "Error", "message": "no"}
    return [
        ("WORKFLOW_START", None, 0.0, None, None),
        ("STEP_START", "do:1:a", 1.0, None, start("do", "a", 0, hasRollback=True)),
        ("ATTEMPT_START", "do:1:a", 1.0, 1, None),
        ("ATTEMPT_FAILURE", "do:1:a", 2.0, 1, {"error": error, "retryDelayMs": 100}),
        ("ATTEMPT_START", "do:1:a", 102.0, 2, None),
        ("ATTEMPT_SUCCESS", "do:1:a", 103.0, 2, None),
        ("STEP_SUCCESS", "do:1:a", 103.0, None, {"output": {"x": 1}}),
        ("SLEEP_START", "sleep:1:nap", 104.0, None, start("sleep", "nap", 1, until=1104.0)),
        ("WORKFLOW_PAUSED", None, 200.0, None, None),
        ("WORKFLOW_RESUMED", None, 700.0, None, {"shiftMs": 500}),
        ("SLEEP_COMPLETE", "sleep:1:nap", 1604.0, None, None),
        ("WAIT_START", "wait:1:ok", 1605.0, None, start("wait", "ok", 2, until=2605.0)),
        ("WAIT_TIMEOUT", "wait:1:ok", 2605.0, None, {"error": error}),
        ("ROLLBACK_START", None, 2606.0, None, {"totalSteps": 1}),
        ("ROLLBACK_STEP_START", "rollback:do:1:a", 2606.0, None, start("rollback", "a-1", -1)),
        ("ROLLBACK_ATTEMPT_START", "rollback:do:1:a", 2606.0, 1, None),
        ("ROLLBACK_ATTEMPT_FAILURE", "rollback:do:1:a", 2607.0, 1, {"error": error}),
        ("ROLLBACK_STEP_FAILURE", "rollback:do:1:a", 2607.0, None, {"error": error}),
    ]


def _folded(as_members: bool) -> dict[str, StepRow]:
    rows: dict[str, StepRow] = {}
    for event, key, ts, attempt, data in _log():
        fold(rows, LogEvent(event) if as_members else event, key, ts, attempt, data)
    return rows


def test_fold_gives_the_same_rows_for_names_read_back_and_members_appended() -> None:
    rows = _folded(as_members=False)
    assert rows == _folded(as_members=True)
    a, nap, ok, undo = (rows[k] for k in ("do:1:a", "sleep:1:nap", "wait:1:ok",
                                          "rollback:do:1:a"))
    assert (a.state, a.output, a.has_rollback, a.ended_at) == ("success", {"x": 1}, True, 103.0)
    assert [(t.number, t.state, t.error, t.retry_delay_ms) for t in a.attempt_log] == [
        (1, "failure", ErrorRecord("Error", "no"), 100), (2, "success", None, None)]
    assert (nap.state, nap.wake_at, nap.ended_at) == ("success", None, 1604.0)
    assert (ok.state, ok.error) == ("failure", ErrorRecord("Error", "no"))
    assert (undo.label, undo.state, [t.state for t in undo.attempt_log]) == (
        "a-1", "failure", ["failure"])


def test_a_resume_shifts_a_pending_sleep_whatever_form_its_event_has() -> None:
    for resumed in ("WORKFLOW_RESUMED", LogEvent.WORKFLOW_RESUMED):
        rows: dict[str, StepRow] = {}
        fold(rows, "SLEEP_START", "sleep:1:nap", 0.0, None,
             {"kind": "sleep", "name": "nap", "count": 1, "seq": 0, "until": 1000.0})
        fold(rows, resumed, None, 10.0, None, {"shiftMs": 250})
        assert rows["sleep:1:nap"].wake_at == 1250.0
