"""``workflows-emulator dev`` as a real subprocess on a free loopback port, driven over HTTP."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from workflows_emulator.state_lock import running_server

from .conftest import EXAMPLE, DevServer, http, run_cli


def test_fetch_starts_failing_transfer_and_api_shows_rollback(
        dev_server: Callable[[Path], DevServer]) -> None:
    server = dev_server(EXAMPLE)
    code, body = http("POST", server.base + "/transfers",
                      {"from": "alice", "to": "bob", "amount": 5000})
    assert code == 200
    instance_id = body["id"]
    d = server.wait_status("transfer", instance_id, {"errored"})
    assert d["rollback"] == {"outcome": "complete", "error": None}
    assert [s["step"] for s in d["rollback_phase"]["steps"]] == [
        "credit destination-1", "debit source-1", "reserve funds-1"]
    code, status = http("GET", f"{server.base}/transfers/{instance_id}")
    assert code == 200 and status["status"] == "errored"
    assert status["error"]["name"] == "NonRetryableError"
    code, missing = http("GET", server.base + "/other")
    assert code == 404 and missing == {"error": "try POST /transfers"}
    code, err = server.api("PATCH", f"/workflows/transfer/instances/{instance_id}",
                           {"action": "pause", "rollback": True})
    assert code == 400
    assert err["errors"][0]["message"] == "'rollback' is only valid when terminating."
    code, err = server.api("PATCH", f"/workflows/transfer/instances/{instance_id}",
                           {"action": "jump"})
    assert err["errors"][0]["message"] == (
        "Invalid action 'jump'. Must be one of: pause, resume, restart, terminate.")


def test_restart_keeps_instances_and_waiting_ones_resume(
        dev_server: Callable[[Path], DevServer], sdk_project: Path, state: Path) -> None:
    server = dev_server(sdk_project)
    code, body = http("POST", server.base + "/", b"order-7")
    assert code == 200 and body == {"id": "from-fetch", "greeting": "hi"}
    server.wait_status("approval", "from-fetch", {"waiting"})
    code, created = server.api("POST", "/workflows/errors/instances",
                               {"id": "e-1", "params": {"kind": "value"}})
    assert code == 200 and created["result"]["id"] == "e-1"
    server.wait_status("errors", "e-1", {"complete"})
    assert server.stop() == 0
    assert "Shutting down; instances are kept in" in server.output
    assert running_server(state) is None  # the lock went with the process

    again = dev_server(sdk_project)
    code, listed = again.api("GET", "/workflows/approval/instances")
    assert [(i["id"], i["status"]) for i in listed["result"]] == [("from-fetch", "waiting")]
    # the CLI finds the running server through the state dir, or with --local
    r = run_cli("workflows", "instances", "send-event", "approval", "from-fetch", "--type",
                "approved", "--payload", '{"by": "dave"}', "--local", "--port", str(again.port))
    assert r.code == 0, r.err
    done = again.wait_status("approval", "from-fetch", {"complete"})
    assert done["output"] == {"order": "order-7", "by": "dave", "attempt": 1}
    r = run_cli("workflows", "instances", "list", "errors", "--json", "--persist-to", str(state))
    assert r.code == 0, r.err
    assert [(i["id"], i["status"]) for i in r.json()] == [("e-1", "complete")]
    code, errors = again.api("GET", "/workflows/errors/instances/e-1")
    assert errors["result"]["output"] == {"caught": "ValueError", "message": "bad value"}
    assert again.stop(signal.SIGTERM) == 0


def test_second_server_on_same_state_is_refused(dev_server: Callable[[Path], DevServer],
                                                state: Path) -> None:
    server = dev_server(EXAMPLE)
    r = run_cli("dev", "--config", str(EXAMPLE), "--port", "0", "--persist-to", str(state))
    assert r.code == 1
    assert f"the state directory {state} is in use by pid {server.proc and server.proc.pid}" in r.err
    assert f"serving {server.base}" in r.err


def test_terminate_with_rollback_over_cli_local(dev_server: Callable[[Path], DevServer],
                                                sdk_project: Path) -> None:
    server = dev_server(sdk_project)
    r = run_cli("workflows", "trigger", "approval", '{"order": "x"}', "--id", "t-9", "--local",
                "--port", str(server.port))
    assert r.code == 0, r.err
    assert '🚀 Workflow instance "t-9" has been triggered successfully' in r.out
    server.wait_status("approval", "t-9", {"waiting"})
    r = run_cli("workflows", "instances", "terminate", "approval", "t-9", "--rollback",
                "--local", "--port", str(server.port))
    assert r.code == 0, r.err
    d = server.wait_status("approval", "t-9", {"terminated"})
    assert d["status"] == "terminated"
    r = run_cli("workflows", "instances", "describe", "approval", "t-9", "--local", "--port",
                str(server.port))
    assert "🚫 Terminated" in r.out
