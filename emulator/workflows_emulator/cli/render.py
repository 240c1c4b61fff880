"""The CLI's text output: tables, times, and the workflow and instance descriptions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson

from ..values import shown

STATUS_LABELS = {
    "complete": "✅ Completed", "errored": "❌ Errored", "paused": "⏸️ Paused",
    "queued": "⌛ Queued", "running": "▶ Running", "terminated": "🚫 Terminated",
    "waiting": "⏰ Waiting", "waitingForPause": "⏱️ Waiting for Pause",
}
STEP_TYPES = {"do": "🎯 Step", "sleep": "💤 Sleeping", "wait": "👀 Waiting for event"}
STATE_LABELS = {"success": "✅ Yes", "failure": "❌ No", "running": "▶ Running"}
ATTEMPT_STATES = {"success": "✅ Success", "error": "❌ Error", "running": "🔄 Working"}
ATTEMPT_HEADERS = ["#", "Start", "End", "Duration", "State", "Error"]


def fmt_time(ms: float | None) -> str:
    """Epoch milliseconds as local date and time."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="milliseconds")


def fmt_duration(start: float | None, end: float | None) -> str:
    """``end - start`` as ``1.234s``."""
    return "-" if start is None or end is None else f"{(end - start) / 1000:.3f}s"


def fmt_error(error: dict[str, Any] | None) -> str:
    """``name: message``."""
    return "" if not error else f"{error.get('name', 'Error')}: {error.get('message', '')}"


def render_table(headers: list[str], rows: list[list[str]], indent: str = "") -> str:
    """A plain aligned table."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(indent + "  ".join(str(c).ljust(w) for c, w in zip(line, widths,
                                                                       strict=False)).rstrip()
                     for line in lines)


# -- workflows ---------------------------------------------------------------------------------


def render_workflows(rows: list[dict[str, Any]]) -> str:
    """``workflows list``."""
    if not rows:
        return "No workflows in this project."
    return render_table(["Name", "Binding", "Class Name", "Instances"], [
        [r["name"], r["binding"], r["class_name"], str(sum(r["instances"].values()))]
        for r in rows])


def render_workflow(r: dict[str, Any]) -> str:
    """``workflows describe``."""
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(r["instances"].items())) or "none"
    return (f"Name:         {r['name']}\nBinding:      {r['binding']}\n"
            f"Script Name:  {r['script_name']}\nClass Name:   {r['class_name']}\n"
            f"Instances:    {counts}")


def render_triggered(r: dict[str, Any]) -> str:
    """``workflows trigger``: the new instance, and how it ended if it already did."""
    text = f'🚀 Workflow instance "{r["id"]}" has been triggered successfully'
    if r["status"] != "queued":
        text += f"\n   Status: {r['status']}"
        if r.get("error"):
            text += f"\n   Error:  {r['error'].get('name')}: {r['error'].get('message')}"
        if r.get("rollback"):
            text += f"\n   Rollback: {r['rollback'].get('outcome')}"
        if r["status"] == "waiting":
            text += ("\n   Its timers fire only while a process drives this state directory: "
                     "run `workflows-emulator dev`, or any command that changes state")
    return text


# -- instances ---------------------------------------------------------------------------------


def render_instances(rows: list[dict[str, Any]], name: str) -> str:
    """``instances list``."""
    if not rows:
        return f'There are no instances in workflow "{name}"'
    if any(r.get("problem") for r in rows):  # damaged files: say why, and what to do
        table = render_table(["Instance ID", "Created", "Status", "Problem"],
                             [[r["id"], fmt_time(r["created"]), r["status"], r.get("problem", "")]
                              for r in rows])
        return table + ("\n\nSome instance files cannot be read: `workflows-emulator doctor "
                        "--quarantine` sets them aside.")
    return render_table(["Instance ID", "Created", "Status"],
                        [[r["id"], fmt_time(r["created"]), r["status"]] for r in rows])


def render_instance(r: dict[str, Any], *, step_output: bool = True, limit: int = 5000) -> str:
    """``instances describe`` as wrangler prints it, plus a Rollback section."""
    out = _instance_summary(r, step_output, limit)
    out.append("")
    out.append("Steps:" if r["steps"] else "Steps: none")
    for s in r["steps"]:
        out += _step_lines(s, step_output, limit)
    out += _rollback_lines(r.get("rollback_phase"))
    return "\n".join(out)


def _instance_summary(r: dict[str, Any], step_output: bool, limit: int) -> list[str]:
    out = [f"Describing instance {r['id']}:",
           f"  Workflow Name:          {r['workflow']}",
           f"  Instance Id:            {r['id']}",
           f"  Status:                 {STATUS_LABELS.get(r['status'], '❓ Unknown')}",
           f"  Queued:                 {fmt_time(r.get('queued'))}",
           f"  Start:                  {fmt_time(r.get('start'))}",
           f"  End:                    {fmt_time(r.get('end'))}",
           f"  Duration:               {fmt_duration(r.get('start'), r.get('end'))}"]
    done = [s for s in r["steps"] if s["type"] == "do" and s["state"] == "success"]
    last = f"{done[-1]['name']}-{done[-1]['count']}" if done else "-"
    out.append(f"  Last Successful Step:   {last}")
    if r.get("error"):
        out.append(f"  Error:                  {fmt_error(r['error'])}")
    if r.get("output") is not None and step_output:
        out.append(f"  Output:                 {_output(r['output'], limit)}")
    return out


def _step_lines(s: dict[str, Any], step_output: bool, limit: int) -> list[str]:
    out = ["", f"  Name:      {s['name']}-{s['count']}",
           f"  Type:      {STEP_TYPES.get(s['type'], s['type'])}",
           f"  Start:     {fmt_time(s['start'])}",
           f"  End:       {fmt_time(s['end'])}",
           f"  Duration:  {fmt_duration(s['start'], s['end'])}",
           f"  Success:   {STATE_LABELS.get(s['state'], s['state'])}"]
    if s.get("retry_at"):
        out.append(f"  Retries At: {fmt_time(s['retry_at'])}")
    if s["type"] == "do":
        out.append(f"  Rollback:  {'registered' if s.get('has_rollback') else 'none'}")
    if s.get("error"):
        out.append(f"  Error:     {fmt_error(s['error'])}")
    if step_output and s.get("output") is not None:
        out.append(f"  Output:    {_output(s['output'], limit)}")
    if s.get("attempts"):
        out.append(render_table(ATTEMPT_HEADERS, _attempt_rows(s["attempts"]), indent="    "))
    return out


def _rollback_lines(rb: dict[str, Any] | None) -> list[str]:
    out = ["", "Rollback:" if rb else "Rollback: not run (no rollback phase)"]
    if not rb:
        return out
    out += [f"  Trigger:   {fmt_error(rb.get('trigger'))}",
            f"  Outcome:   {rb.get('outcome')}"
            + (f" ({rb.get('completed')}/{rb.get('total')} handlers completed)"
               if rb.get("total") is not None else "")]
    if rb.get("error"):
        out.append(f"  Error:     {fmt_error(rb['error'])}")
    for s in rb["steps"]:
        out += ["", f"  {s['order']}. Undo {s['step']}",
                f"     Success:   {STATE_LABELS.get(s['state'], s['state'])}",
                f"     Start:     {fmt_time(s['start'])}",
                f"     Duration:  {fmt_duration(s['start'], s['end'])}"]
        if s.get("error"):
            out.append(f"     Error:     {fmt_error(s['error'])}")
        if s.get("attempts"):
            out.append(render_table(ATTEMPT_HEADERS, _attempt_rows(s["attempts"]),
                                    indent="       "))
    return out


def _attempt_rows(attempts: list[dict[str, Any]]) -> list[list[str]]:
    return [[str(a["attempt"]), fmt_time(a.get("start")), fmt_time(a.get("end")),
             fmt_duration(a.get("start"), a.get("end")),
             ATTEMPT_STATES.get(a.get("state", ""), a.get("state", "")), fmt_error(a.get("error"))]
            for a in attempts]


def json_text(value: Any) -> str:
    """``--json`` output: indented by two as wrangler prints it, UTF-8 as JavaScript writes it.

    orjson, because the standard library's indenting encoder is pure Python: several times
    slower on the describe of a long instance than reading it.
    """
    try:
        return orjson.dumps(value, default=shown, option=orjson.OPT_INDENT_2
                            | orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value, indent=2, default=shown, ensure_ascii=False)


def _output(value: Any, limit: int) -> str:
    text = json.dumps(value, default=shown)
    return text if len(text) <= limit else text[:limit] + "[...output truncated]"


# -- doctor ------------------------------------------------------------------------------------


def render_doctor(state: Any, driven_by: str | None, moved: list[Any], problems: list[Any]) -> str:
    """``doctor``: who drives the directory, what was set aside, what is still wrong."""
    out = [f"State directory {state}",
           f"  Driven by: {driven_by or 'no process'}"]
    for finding, target in moved:
        out.append(f"  🧹 Set aside {finding.path}\n     ({finding.problem})\n     -> {target}")
    for finding in problems:
        out.append(f"  ❌ {finding.path}\n     {finding.problem}")
    if not problems:
        out.append("  ✅ Every state file can be read.")
    elif not moved:
        out.append("  Run again with --quarantine to set these files aside "
                   "(the other instances are not affected by them).")
    return "\n".join(out)
