"""Time travel in dev: ``dev --virtual-clock``, ``time advance`` and ``/__workflows/api/time``.

Real dev server subprocesses on 127.0.0.1 and the real console script; each test stops the
servers it starts (the ``dev_server`` fixture, or `virtual_server`'s own cleanup).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workflows_emulator.devserver.timeline_api import advance_ms

from .conftest import ROOT, SCRIPT, DevServer, free_port, run_cli

pytestmark = pytest.mark.slow

TRAVEL_ENTRY = '''
from workers import Response, WorkflowEntrypoint


class Sleeper(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("three hours", "3 hours")

        @step.do("after")
        async def after():
            return "woke"

        return await after()


class Timers(WorkflowEntrypoint):
    """A retry delay of 10 minutes, a 3-hour sleep, then an event that never comes (1 hour)."""

    async def run(self, event, step):
        @step.do("flaky", config={"retries": {"limit": 1, "delay": "10 minutes",
                                              "backoff": "constant"}})
        async def flaky(ctx):
            if ctx["attempt"] == 1:
                raise ValueError("try again in 10 minutes")
            return ctx["attempt"]

        await flaky()
        await step.sleep("nap", "3 hours")
        try:
            await step.wait_for_event("approval", "approved", timeout="1 hour")
        except Exception as exc:
            return {"timed_out": type(exc).__name__}
        return {"timed_out": None}


async def on_fetch(request, env):
    return Response("time travel")
'''

TRAVEL_TOML = '''
name = "travel"
main = "src/entry.py"
compatibility_date = "2026-03-01"
compatibility_flags = ["python_workers"]

[[workflows]]
name = "sleeper"
binding = "SLEEPER"
class_name = "Sleeper"

[[workflows]]
name = "timers"
binding = "TIMERS"
class_name = "Timers"
'''
HOUR_MS = 3_600_000


@pytest.fixture
def travel_project(tmp_path: Path) -> Path:
    root = tmp_path / "travel"
    (root / "src").mkdir(parents=True)
    (root / "src" / "entry.py").write_text(textwrap.dedent(TRAVEL_ENTRY))
    (root / "wrangler.toml").write_text(TRAVEL_TOML)
    return root / "wrangler.toml"


@pytest.fixture
def virtual_server(dev_server: Callable[..., DevServer]) -> Callable[[Path], DevServer]:
    """Start ``dev --virtual-clock`` servers on the test's state; each stops with the test."""
    return lambda config: dev_server(config, "--virtual-clock")


def create(server: DevServer, workflow: str, instance_id: str) -> None:
    code, body = server.api("POST", f"/workflows/{workflow}/instances", {"id": instance_id})
    assert code == 200, body


def test_time_advance_cli_wakes_a_three_hour_sleep(
        virtual_server: Callable[[Path], DevServer], travel_project: Path,
        state: Path) -> None:
    server = virtual_server(travel_project)
    assert "Virtual clock" in server.output
    code, clock = server.api("GET", "/time")
    assert code == 200 and clock["result"]["virtual"] is True
    start = clock["result"]["now"]
    create(server, "sleeper", "s-1")
    server.wait_status("sleeper", "s-1", {"waiting"})

    r = run_cli("time", "advance", "1h", "--persist-to", str(state))  # found via the state dir
    assert r.code == 0, r.err
    assert r.out.startswith("⏩ Advanced the virtual clock by 1h (3600 s)")
    assert server.wait_status("sleeper", "s-1", {"waiting"})["status"] == "waiting"

    r = run_cli("time", "advance", "2h", "--local", "--port", str(server.port), "--json")
    assert r.code == 0, r.err
    assert r.json() == {"virtual": True, "now": start + 3 * HOUR_MS, "advanced_ms": 2 * HOUR_MS}
    done = server.wait_status("sleeper", "s-1", {"complete"}, timeout=5)
    assert done["output"] == "woke"
    [nap] = [s for s in done["steps"] if s["type"] == "sleep"]
    assert nap["end"] - nap["start"] == 3 * HOUR_MS  # on the virtual clock, exactly

    r = run_cli("time", "show", "--persist-to", str(state))
    assert r.code == 0 and "runs on the virtual clock" in r.out, r.out + r.err


def test_advance_jumps_retry_delays_sleeps_and_event_timeouts(
        virtual_server: Callable[[Path], DevServer], travel_project: Path) -> None:
    server = virtual_server(travel_project)
    create(server, "timers", "t-1")
    first = server.wait_status("timers", "t-1", {"waiting"})
    [flaky] = first["steps"]
    assert flaky["state"] == "running" and flaky["retry_at"] is not None  # the retry delay

    def advance(by: str) -> dict[str, Any]:
        code, body = server.api("POST", "/time/advance", {"by": by})
        assert code == 200, body
        code, doc = server.api("GET", "/timeline/workflows/timers/instances/t-1")
        assert code == 200, doc
        result: dict[str, Any] = doc["result"]
        return result

    doc = advance("9m")
    assert [a["state"] for a in doc["steps"][0]["attempts"]] == ["error"]
    doc = advance("1m")  # the 10-minute retry delay is over: attempt 2 succeeds, the nap starts
    flaky, nap = doc["steps"]
    assert [(a["state"], a["retry_delay_ms"]) for a in flaky["attempts"]] == [
        ("error", 600_000), ("success", None)]
    assert flaky["config"]["retries"]["delay"] == "10 minutes"
    assert nap["type"] == "sleep" and nap["state"] == "running"
    doc = advance("3 hours")  # the sleep as step.sleep writes durations
    wait = doc["steps"][2]
    assert wait["type"] == "wait" and wait["state"] == "running"
    assert wait["config"] == {"type": "approved", "timeout": HOUR_MS}
    assert doc["status"] == "waiting" and doc["clock"]["virtual"] is True
    doc = advance("3600000")  # milliseconds: the event's 1-hour timeout passes
    assert doc["status"] == "complete", doc
    assert doc["output"]["timed_out"] is not None
    assert doc["steps"][2]["state"] == "failure"

    code, err = server.api("POST", "/time/advance", {"by": "soon"})
    assert code == 400 and "invalid duration 'soon'" in err["errors"][0]["message"]
    code, err = server.api("POST", "/time/advance", {"duration": "2h"})
    assert code == 400 and '{"by": duration}' in err["errors"][0]["message"]
    code, err = server.api("GET", "/time/advance")
    assert code == 405


def test_virtual_clock_goes_on_from_where_it_was_after_a_restart(
        virtual_server: Callable[[Path], DevServer], travel_project: Path,
        state: Path) -> None:
    first = virtual_server(travel_project)
    create(first, "timers", "t-2")
    first.wait_status("timers", "t-2", {"waiting"})
    code, body = first.api("POST", "/time/advance", {"by": "2h"})  # 1 h 50 min into the nap
    assert code == 200, body
    left_at = body["result"]["now"]
    assert first.stop() == 0
    assert (state / "virtual-clock.json").is_file()

    again = virtual_server(travel_project)
    # the wall clock went on a few seconds meanwhile: a jump of a bit under 2 hours
    assert re.search(r"moved (1 h 59 min|2 h) ahead, to where the last advance on this state "
                     "directory left it", again.output), again.output
    assert again.api("GET", "/time")[1]["result"]["now"] >= left_at
    code, body = again.api("POST", "/time/advance", {"by": "70m"})  # the rest of the nap
    assert code == 200, body
    assert again.wait_status("timers", "t-2", {"waiting"})["steps"][2]["type"] == "wait"


def test_real_clock_server_refuses_to_advance(
        dev_server: Callable[[Path], DevServer], travel_project: Path, state: Path) -> None:
    server = dev_server(travel_project)
    code, clock = server.api("GET", "/time")
    assert code == 200 and clock["result"]["virtual"] is False
    code, err = server.api("POST", "/time/advance", {"by": "2h"})
    assert code == 409
    message = err["errors"][0]["message"]
    assert "real clock" in message and "workflows-emulator dev --virtual-clock" in message
    r = run_cli("time", "advance", "2h", "--persist-to", str(state))
    assert r.code == 1 and "restart it with `workflows-emulator dev --virtual-clock`" in r.err


def test_time_needs_a_running_server(tmp_path: Path) -> None:
    r = run_cli("time", "advance", "2h", "--persist-to", str(tmp_path / "nothing"))
    assert r.code == 1
    assert "no dev server is driving" in r.err and "dev --virtual-clock" in r.err


@pytest.mark.parametrize(("text", "ms"), [
    ("2h", 2 * HOUR_MS), ("15m", 900_000), ("90s", 90_000), ("1d", 24 * HOUR_MS),
    ("500ms", 500), ("1.5h", 5_400_000), ("3 hours", 3 * HOUR_MS), ("1 week", 168 * HOUR_MS),
    (1500, 1500), ("2500", 2500),
])
def test_advance_durations(text: str | int, ms: int) -> None:
    assert advance_ms(text) == ms


@pytest.mark.parametrize("text", ["2x", "-1h", "", "h", "soon", None, True])
def test_advance_refuses_what_is_not_a_duration(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        advance_ms(text)


def readme_walkthrough() -> tuple[str, str]:
    """The two ``sh`` blocks of the README's time-travel walkthrough."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### The instance timeline page and time travel")
    section = readme[start:readme.index("\n## ", start)]
    first, second = re.findall(r"```sh\n(.*?)```", section, re.S)
    return first, second


def test_readme_time_travel_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """The README's commands, in a fresh folder; only the console script's path is this
    venv's, and the dev server gets a free port instead of 8787."""
    first, second = readme_walkthrough()

    def verbatim(block: str) -> str:
        return block.replace(".venv/bin/workflows-emulator", str(SCRIPT))

    [dev_line] = [line for line in first.splitlines() if " dev " in line]
    files = subprocess.run(["bash", "-euc", verbatim(first.replace(dev_line, ""))], cwd=tmp_path,
                           capture_output=True, text=True, timeout=30)
    assert files.returncode == 0, files.stderr
    dev = subprocess.Popen([*shlex.split(verbatim(dev_line)), "--port", str(free_port())],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    try:
        assert dev.stdout is not None
        output = ""
        while "Ready on" not in output:
            line = dev.stdout.readline()
            assert line, f"the README's dev server did not start:\n{output}"
            output += line
        assert "Virtual clock" in output
        run = subprocess.run(["bash", "-euc", verbatim(second)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        dev.send_signal(signal.SIGINT)
        dev.communicate(timeout=15)
    assert "⏩ Advanced the virtual clock by 3h (10800 s)" in run.stdout
    assert re.search(r"Status: +✅ Completed", run.stdout), run.stdout
    assert 'Output: {"approved_by": "ann"}' in re.sub(r" +", " ", run.stdout)
    assert re.search(r"Name: +wait for the slot-1\n.*\n.*\n.*\n +Duration: +10800\.000s",
                     run.stdout), run.stdout


def test_an_advance_of_more_than_ten_years_is_refused() -> None:
    from workflows_emulator.devserver.timeline_api import advance_ms

    assert advance_ms("3650d") == 3650 * 86_400_000
    with pytest.raises(ValueError, match="more than 10 years"):
        advance_ms("999999999999999999999d")
