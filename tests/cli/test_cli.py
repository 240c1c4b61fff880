"""The real ``workflows-emulator`` console script against a state directory (no server)."""

from __future__ import annotations

from pathlib import Path

from .conftest import EXAMPLE, run_cli


def _wf(state: Path, config: Path = EXAMPLE) -> list[str]:
    return ["--config", str(config), "--persist-to", str(state)]


def test_trigger_failing_transfer_runs_in_foreground_and_rolls_back(state: Path) -> None:
    r = run_cli("workflows", "trigger", "transfer",
                '{"from": "alice", "to": "bob", "amount": 5000}', "--id", "t-1", *_wf(state))
    assert r.code == 0, r.err
    assert '🚀 Workflow instance "t-1" has been triggered successfully' in r.out
    assert "Status: errored" in r.out
    assert "Rollback: complete" in r.out
    # the handlers' own prints, in reverse start order
    assert r.out.index("nothing to reverse") < r.out.index("refund 5000") < r.out.index(
        "release hold")


def test_describe_json_has_timeline_attempts_and_rollback_order(state: Path) -> None:
    run_cli("workflows", "trigger", "transfer", '{"from": "a", "to": "b", "amount": 5000}',
            "--id", "t-2", *_wf(state))
    r = run_cli("workflows", "instances", "describe", "transfer", "t-2", "--json", *_wf(state))
    assert r.code == 0, r.err
    d = r.json()
    assert d["status"] == "errored"
    assert d["error"] == {"name": "NonRetryableError",
                          "message": "b's bank refused 5000: over the limit of 1000"}
    assert [(s["name"], s["state"]) for s in d["steps"]] == [
        ("reserve funds", "success"), ("debit source", "success"),
        ("credit destination", "failure")]
    assert [a["state"] for a in d["steps"][2]["attempts"]] == ["error"]
    rb = d["rollback_phase"]
    assert rb["outcome"] == "complete" and rb["total"] == 3 and rb["completed"] == 3
    assert [(s["order"], s["step"], s["state"]) for s in rb["steps"]] == [
        (1, "credit destination-1", "success"), (2, "debit source-1", "success"),
        (3, "reserve funds-1", "success")]
    assert all(len(s["attempts"]) == 1 for s in rb["steps"])


def test_describe_text_latest_shows_rollback_section(state: Path) -> None:
    run_cli("workflows", "trigger", "transfer", '{"from": "a", "to": "b", "amount": 5}',
            "--id", "ok-1", *_wf(state))
    run_cli("workflows", "trigger", "transfer", '{"from": "a", "to": "b", "amount": 9999}',
            "--id", "bad-1", *_wf(state))
    r = run_cli("workflows", "instances", "describe", "transfer", *_wf(state))
    assert r.code == 0, r.err
    assert "Instance Id:            bad-1" in r.out
    assert "Status:                 ❌ Errored" in r.out
    assert "Last Successful Step:   debit source-1" in r.out
    assert "Rollback:\n  Trigger:   NonRetryableError" in r.out
    assert "Outcome:   complete (3/3 handlers completed)" in r.out
    assert r.out.index("1. Undo credit destination-1") < r.out.index("3. Undo reserve funds-1")
    ok = run_cli("workflows", "instances", "describe", "transfer", "ok-1", *_wf(state))
    assert "✅ Completed" in ok.out
    assert "Rollback: not run" in ok.out
    assert '"account": "b", "amount": 5' in ok.out


def test_instances_list_filters_by_status_and_rejects_bad_status(state: Path) -> None:
    run_cli("workflows", "trigger", "transfer", '{"from": "a", "to": "b", "amount": 1}',
            "--id", "good", *_wf(state))
    run_cli("workflows", "trigger", "transfer", '{"from": "a", "to": "b", "amount": 2000}',
            "--id", "bad", *_wf(state))
    r = run_cli("workflows", "instances", "list", "transfer", "--status", "errored",
                "--json", *_wf(state))
    assert [i["id"] for i in r.json()] == ["bad"]
    table = run_cli("workflows", "instances", "list", "transfer", *_wf(state))
    assert table.out.splitlines()[0].split() == ["Instance", "ID", "Created", "Status"]
    assert "good" in table.out and "complete" in table.out
    bad = run_cli("workflows", "instances", "list", "transfer", "--status", "done", *_wf(state))
    assert bad.code == 1
    assert 'Looks like you have provided a invalid status "done". Valid statuses are: queued' \
        in bad.err


def test_trigger_rejects_invalid_json_and_unknown_workflow(state: Path) -> None:
    r = run_cli("workflows", "trigger", "transfer", "{nope", *_wf(state))
    assert r.code == 1
    assert 'Error while parsing instance parameters: "{nope"' in r.err
    r = run_cli("workflows", "trigger", "nope", *_wf(state))
    assert r.code == 1
    assert 'Workflow "nope" not found (this project has: transfer, from ' in r.err
    assert "pass --config" in r.err


def test_wait_for_event_send_event_and_sdk_step(state: Path, sdk_project: Path) -> None:
    w = _wf(state, sdk_project)
    r = run_cli("workflows", "trigger", "approval", '{"order": "o-1"}', "--id", "a-1", *w)
    assert r.code == 0, r.err
    assert "Status: waiting" in r.out
    r = run_cli("workflows", "instances", "send-event", "approval", "a-1", "--type", "approved",
                "--payload", '{"by": "carol"}', *w)
    assert r.code == 0, r.err
    assert ('📤 The event with type "approved" and payload "{"by": "carol"}" was sent to the '
            'instance "a-1" from approval') in r.out
    d = run_cli("workflows", "instances", "describe", "approval", "a-1", "--json", *w).json()
    assert d["status"] == "complete"
    assert d["output"] == {"order": "o-1", "by": "carol", "attempt": 1}
    assert [(s["type"], s["name"]) for s in d["steps"]] == [
        ("do", "prepare"), ("wait", "approval"), ("do", "finish")]


def test_pause_resume_terminate_with_rollback(state: Path, sdk_project: Path) -> None:
    w = _wf(state, sdk_project)
    run_cli("workflows", "trigger", "approval", '{"order": "o"}', "--id", "p-1", *w)
    r = run_cli("workflows", "instances", "pause", "approval", "p-1", *w)
    assert '⏸️ The instance "p-1" from approval was paused successfully' in r.out
    assert "Status: paused" in r.out
    r = run_cli("workflows", "instances", "resume", "approval", "p-1", *w)
    assert '🔄 The instance "p-1" from approval was resumed successfully' in r.out
    assert "Status: waiting" in r.out
    r = run_cli("workflows", "instances", "terminate", "approval", "p-1", "--rollback", *w)
    assert '🥷 The instance "p-1" from approval was terminated successfully' in r.out
    assert "Status: terminated" in r.out
    again = run_cli("workflows", "instances", "terminate", "approval", "p-1", *w)
    assert again.code == 1
    assert "Cannot terminate instance since its on a finite state" in again.err


def test_restart_from_step_and_flag_checks(state: Path) -> None:
    w = _wf(state)
    run_cli("workflows", "trigger", "transfer", '{"from": "a", "to": "b", "amount": 5000}',
            "--id", "r-1", *w)
    r = run_cli("workflows", "instances", "restart", "transfer", "r-1", "--from-step-count", "2",
                *w)
    assert r.code == 1
    assert "--from-step-name is required when using --from-step-count or --from-step-type" in r.err
    r = run_cli("workflows", "instances", "restart", "transfer", "r-1",
                "--from-step-name", "nope", *w)
    assert r.code == 1
    assert '(instance.cannot_restart) Step "nope" not found in execution history' in r.err
    r = run_cli("workflows", "instances", "restart", "transfer", "r-1",
                "--from-step-name", "credit destination", *w)
    assert r.code == 0, r.err
    assert '🥷 The instance "r-1" from transfer was restarted successfully' in r.out
    d = run_cli("workflows", "instances", "describe", "transfer", "r-1", "--json", *w).json()
    assert d["status"] == "errored"
    assert [e["event"] for e in d["events"]].count("WORKFLOW_RESTARTED") == 1


def test_errors_crossing_step_do_keep_only_cloudflare_types(state: Path,
                                                            sdk_project: Path) -> None:
    w = _wf(state, sdk_project)
    outputs = {}
    for kind in ("value", "key", "nonretryable", "rollback"):
        run_cli("workflows", "trigger", "errors", f'{{"kind": "{kind}"}}', "--id", kind, *w)
        outputs[kind] = run_cli("workflows", "instances", "describe", "errors", kind, "--json",
                                *w).json()
    assert outputs["value"]["output"] == {"caught": "ValueError", "message": "bad value"}
    assert outputs["key"]["output"]["caught"] == "StepError"
    assert outputs["nonretryable"]["output"] == {"caught": "NonRetryableError",
                                                 "message": "stop"}
    assert outputs["rollback"]["status"] == "errored"
    assert outputs["rollback"]["error"]["name"] == "TypeError"
    assert "workflows_saga.WorkflowEntrypoint" in outputs["rollback"]["error"]["message"]


def test_delete_and_workflows_commands_and_python_m(state: Path) -> None:
    w = _wf(state)
    for i in ("d-1", "d-2", "d-3"):
        run_cli("workflows", "trigger", "transfer", '{"from": "a", "to": "b", "amount": 1}',
                "--id", i, *w)
    r = run_cli("workflows", "instances", "delete", "transfer", "d-1", *w)
    assert '🗑️  Deleted workflow instances from "transfer": d-1' in r.out
    listed = run_cli("workflows", "list", "--json", *w, module=True)
    assert listed.code == 0, listed.err
    assert listed.json() == [{"name": "transfer", "binding": "TRANSFER",
                              "class_name": "TransferWorkflow", "script_name": "transfer-project",
                              "instances": {"complete": 2}}]
    r = run_cli("workflows", "delete", "transfer", *w)
    assert "deleted 2 instance(s)" in r.out
    assert run_cli("workflows", "instances", "list", "transfer", "--json", *w).json() == []
    missing = run_cli("workflows", "instances", "describe", "transfer", "d-2", *w)
    assert missing.code == 1 and "instance.not_found" in missing.err


def test_local_flag_without_server_says_what_to_do(state: Path) -> None:
    r = run_cli("workflows", "list", "--local", "--port", "1", *_wf(state))
    assert r.code == 1
    assert "cannot reach the dev server at http://127.0.0.1:1" in r.err
    assert "workflows-emulator dev" in r.err
