"""The real wrangler CLI against ``workflows-emulator dev``: ``wrangler workflows … --local``.

Each test starts the Python dev server (a subprocess on 127.0.0.1, stopped by the test) on a
copy of ``examples/transfer-project``, to which the copy adds one workflow that waits for
an event (so pause, resume, send-event and restart have something to act on). Then it runs
the pinned wrangler from ``node_modules`` under the pinned Node 22, offline, and checks what
wrangler prints: the commands talk to ``/cdn-cgi/local/explorer/api`` exactly as they talk
to ``wrangler dev``.

Prerequisite: the npm tooling (``make .build/realruntime.stamp``); without it these tests fail
and say so. Marked ``e2e`` as the other tests that run Cloudflare's own tools.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.conftest import EXAMPLE, DevServer, http
from realruntime_support import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NODE = REPO / "node_modules" / "node" / "bin" / "node"
WRANGLER = REPO / "node_modules" / "wrangler" / "bin" / "wrangler.js"
EXPLORER = "/cdn-cgi/local/explorer/api"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

APPROVAL_TOML = """
[[workflows]]
name = "approval"
binding = "APPROVAL"
class_name = "ApprovalWorkflow"
"""

APPROVAL_ENTRY = '''

class ApprovalWorkflow(WorkflowEntrypoint):
    """Holds a seat, waits for an approval, confirms; a rollback releases the seat."""

    async def run(self, event, step):
        async def release(rb):
            print(f"rollback: release seat {rb.output['seat']}")

        @step.do("hold seat", rollback=release)
        async def hold():
            return {"seat": event["payload"].get("seat", "1A")}

        await hold()
        approved = await step.wait_for_event("wait for approval", "approved", timeout="1 hour")

        @step.do("confirm")
        async def confirm():
            return {"by": approved["payload"]["by"]}

        return await confirm()
'''


class Wrangler:
    """The pinned wrangler, offline, with ``--local --port`` of one dev server."""

    def __init__(self, port: int, home: Path) -> None:
        self.port = port
        self.env = {**os.environ, "HOME": str(home), "WRANGLER_SEND_METRICS": "false",
                    "CI": "1", "NO_COLOR": "1", "FORCE_COLOR": "0", "TZ": "UTC"}

    def __call__(self, *args: str, ok: bool = True) -> str:
        proc = subprocess.run(
            [str(NODE), str(WRANGLER), "workflows", *args, "--local", "--port", str(self.port)],
            capture_output=True, text=True, env=self.env, cwd=self.env["HOME"], timeout=120)
        out = ANSI.sub("", proc.stdout + proc.stderr)
        assert (proc.returncode == 0) == ok, f"wrangler {' '.join(args)} -> {proc.returncode}:\n{out}"
        return out

    def json(self, *args: str) -> Any:
        proc = subprocess.run(
            [str(NODE), str(WRANGLER), "workflows", *args, "--json", "--local", "--port",
             str(self.port)],
            capture_output=True, text=True, env=self.env, cwd=self.env["HOME"], timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of examples/transfer-project with a waiting workflow added."""
    if not (NODE.is_file() and WRANGLER.is_file()):
        pytest.fail(f"the pinned Node and wrangler are missing ({NODE}, {WRANGLER}): run "
                    "`make .build/realruntime.stamp` to install the npm tooling")
    root = tmp_path / "transfer-project"
    shutil.copytree(EXAMPLE.parent, root,
                    ignore=shutil.ignore_patterns("python_modules", "__pycache__", ".wrangler"))
    with (root / "wrangler.toml").open("a") as toml:
        toml.write(APPROVAL_TOML)
    with (root / "src" / "entry.py").open("a") as entry:
        entry.write(APPROVAL_ENTRY)
    return root / "wrangler.toml"


@pytest.fixture
def session(project: Path, tmp_path: Path) -> Iterator[tuple[DevServer, Wrangler]]:
    """The dev server on the project, and wrangler pointed at it; the server is stopped after."""
    server = DevServer(project, tmp_path / "state")
    server.start()
    home = tmp_path / "home"
    home.mkdir()
    try:
        yield server, Wrangler(server.port, home)
    finally:
        server.stop()


def wait_status(server: DevServer, workflow: str, instance: str, statuses: set[str],
                timeout: float = 20) -> dict[str, Any]:
    """Poll the explorer API until the instance has one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        code, body = http("GET", f"{server.base}{EXPLORER}/workflows/{workflow}/instances/{instance}")
        if code == 200 and body["result"]["status"] in statuses:
            result: dict[str, Any] = body["result"]
            return result
        assert time.monotonic() < deadline, f"{instance} stayed {body}"
        time.sleep(0.1)


def test_list_and_describe_workflows(session: tuple[DevServer, Wrangler]) -> None:
    server, wrangler = session
    out = wrangler("list")
    assert "Showing 2 workflows from local dev session:" in out
    assert re.search(r"│ transfer\s+│ transfer-project │ TransferWorkflow\s+│", out), out
    assert re.search(r"│ approval\s+│ transfer-project │ ApprovalWorkflow\s+│", out), out
    wrangler("trigger", "transfer", '{"from": "alice", "to": "bob", "amount": 10}', "--id", "t-10")
    wait_status(server, "transfer", "t-10", {"complete"})
    out = wrangler("describe", "transfer")
    assert re.search(r"Name:\s+transfer\n", out), out
    assert re.search(r"Script Name:\s+transfer-project", out), out
    assert re.search(r"Class Name:\s+TransferWorkflow", out), out
    assert "Instance Status Counts:" in out
    counts = dict(re.findall(r"^\s+(\w+):\s+(\d+)$", out, re.MULTILINE))
    assert counts.pop("complete") == "1" and set(counts.values()) == {"0"}, out
    counts["complete"] = "1"
    assert set(counts) == {"queued", "running", "paused", "errored", "terminated", "complete",
                           "waitingForPause", "waiting"}


def test_rolled_back_transfer_as_wrangler_shows_it(session: tuple[DevServer, Wrangler]) -> None:
    server, wrangler = session
    out = wrangler("trigger", "transfer", '{"from": "alice", "to": "bob", "amount": 5000}',
                   "--id", "t-5000")
    assert '🚀 Workflow instance "t-5000" has been triggered successfully' in out
    wait_status(server, "transfer", "t-5000", {"errored"})

    out = wrangler("instances", "describe", "transfer", "t-5000")
    assert re.search(r"Instance Id:\s+t-5000", out), out
    assert re.search(r"Status:\s+❌ Errored", out), out
    assert re.search(r"Last Successful Step:\s+debit source-1", out), out
    assert "Error:                 NonRetryableError: bob's bank refused 5000: over the limit " \
           "of 1000" in out
    names = re.findall(r"^  Name:\s+(.+)$", out, re.MULTILINE)
    assert names == ["reserve funds-1", "debit source-1", "credit destination-1"]
    assert re.findall(r"^  Success:\s+(.+)$", out, re.MULTILINE) == ["✅ Yes", "✅ Yes", "❌ No"]
    assert 'Output:    {"hold_id":"hold-alice-5000"}' in out
    assert "❌ Error │ NonRetryableError: bob's bank refused 5000" in out

    # The rollback phase is in the document as extra fields, which wrangler passes through.
    described = wrangler.json("instances", "describe", "transfer", "t-5000")
    assert described["id"] == "t-5000" and described["status"] == "errored"
    assert described["rollback"] == {"outcome": "complete", "error": None}
    phase = described["rollback_phase"]
    assert phase["trigger"]["name"] == "NonRetryableError"
    assert [s["step"] for s in phase["steps"]] == [
        "credit destination-1", "debit source-1", "reserve funds-1"]
    assert all(s["state"] == "success" for s in phase["steps"])

    out = wrangler("instances", "list", "transfer")
    assert "Showing 1 instance from page 1:" in out
    assert re.search(r"│ t-5000\s+│ .+ │ ❌ Errored │", out), out
    out = wrangler("instances", "list", "transfer", "--status", "complete")
    assert 'No instances in workflow "transfer" matched the provided filters.' in out


def test_pause_resume_send_event_restart_terminate(session: tuple[DevServer, Wrangler]) -> None:
    server, wrangler = session
    wrangler("trigger", "approval", '{"seat": "7C"}', "--id", "a-1")
    wait_status(server, "approval", "a-1", {"waiting"})

    out = wrangler("instances", "pause", "approval", "latest")
    assert 'Latest instance is "a-1"' in out
    assert '⏸️ The instance "a-1" from approval was paused successfully' in out
    assert wait_status(server, "approval", "a-1", {"paused"})["status"] == "paused"
    assert re.search(r"│ a-1\s+│ .+ │ ⏸️ Paused │", wrangler("instances", "list", "approval"))

    out = wrangler("instances", "resume", "approval", "a-1")
    assert '🔄 The instance "a-1" from approval was resumed successfully' in out
    wait_status(server, "approval", "a-1", {"waiting"})

    out = wrangler("instances", "send-event", "approval", "a-1", "--type", "approved",
                   "--payload", '{"by": "dave"}')
    assert ('📤 The event with type "approved" and payload "{"by": "dave"}" was sent to the '
            'instance "a-1" from approval') in out
    done = wait_status(server, "approval", "a-1", {"complete"})
    assert done["output"] == {"by": "dave"}
    out = wrangler("instances", "describe", "approval", "a-1")
    assert re.search(r"Status:\s+✅ Completed", out), out
    assert re.search(r"Name:\s+wait for approval-1\n\s+Type:\s+👀 Waiting for event", out), out
    assert 'Output:    {"by":"dave"}' in out

    out = wrangler("instances", "restart", "approval", "a-1")
    assert '🥷 The instance "a-1" from approval was restarted successfully' in out
    wait_status(server, "approval", "a-1", {"waiting"})

    out = wrangler("instances", "terminate", "approval", "a-1", "--rollback")
    assert '🥷 The instance "a-1" from approval was terminated successfully' in out
    described = wrangler.json("instances", "describe", "approval", "a-1")
    assert described["status"] == "terminated"
    assert described["rollback"] == {"outcome": "complete", "error": None}
    assert [s["step"] for s in described["rollback_phase"]["steps"]] == ["hold seat-1"]
    assert server.stop() == 0
    assert "rollback: release seat 7C" in server.output


def test_errors_and_deletes(session: tuple[DevServer, Wrangler]) -> None:
    server, wrangler = session
    out = wrangler("instances", "describe", "approval", "nope", ok=False)
    assert "Local API error: Workflow instance 'nope' not found." in out
    out = wrangler("describe", "missing", ok=False)
    assert "Local API error: Workflow 'missing' not found." in out
    out = wrangler("instances", "list", "approval")
    assert ('There are no instances in workflow "approval". You can trigger it with "wrangler '
            'workflows trigger approval --local"') in out
    out = wrangler("instances", "pause", "approval", "latest", ok=False)
    assert 'There are no instances in workflow "approval"' in out

    for instance in ("d-1", "d-2", "d-3"):
        wrangler("trigger", "approval", "--id", instance)
    out = wrangler("instances", "delete", "approval", "d-1", "gone", ok=False)
    assert 'Deleted workflow instances from "approval": "d-1"' in out
    assert "gone" in out and "Failed to delete 1 workflow instance(s)" in out
    out = wrangler("delete", "approval")
    assert '✅ Workflow "approval" instances removed successfully from local dev session.' in out
    code, body = http("GET", f"{server.base}{EXPLORER}/workflows/approval/instances")
    assert code == 200 and body["result"] == [] and body["result_info"]["total_count"] == 0
