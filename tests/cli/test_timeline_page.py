"""The instance timeline page at ``/__workflows/`` in real headless Chromium (Playwright).

Debian's Chromium at ``/usr/bin/chromium`` drives a real ``workflows-emulator dev`` subprocess
serving a copy of ``examples/transfer-project`` (plus a workflow that retries, sleeps and
waits for an event). The tests check elements, not pixels; every view they reach is saved as
a screenshot under the test's ``tmp_path`` (the path is printed). With
``WORKFLOWS_EMULATOR_DOCS_SCREENSHOT=1`` the rolled-back transfer's view is also written to
``docs/timeline.png``, the README's picture.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .conftest import ROOT, DevServer, http
from .test_time_travel import TRAVEL_ENTRY, TRAVEL_TOML

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path(os.environ.get("WORKFLOWS_EMULATOR_CHROMIUM", "/usr/bin/chromium"))
DOCS_SCREENSHOT = ROOT / "docs" / "timeline.png"

NAP_WORKFLOW = '''


class NapWorkflow(WorkflowEntrypoint):
    """Fails once and retries after a second, sleeps, then waits for an approval."""

    async def run(self, event, step):
        async def undo(rb):
            print(f"rollback: undo {rb.step_name}")

        @step.do("prepare", config={"retries": {"limit": 2, "delay": "1 second",
                                                "backoff": "constant"}}, rollback=undo)
        async def prepare(ctx):
            if ctx["attempt"] < 2:
                raise ValueError("warming up")
            return {"ready": True}

        await prepare()
        await step.sleep("nap", event["payload"].get("nap", "3 hours"))
        got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return {"approved_by": got["payload"]["by"]}
'''
NAP_TOML = '''
[[workflows]]
name = "nap"
binding = "NAP"
class_name = "NapWorkflow"
'''


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: the browser tests need Debian's "
                    "package (apt-get install -y chromium), or WORKFLOWS_EMULATOR_CHROMIUM "
                    "pointing at a Chromium binary; they never skip")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; a script error, a console error or a 5xx answer during the test fails it
    (the 4xx the API answers on purpose show in the browser's console as failed loads)."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on("console", lambda msg: problems.append(f"console: {msg.text}")
           if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    tab.on("response", lambda r: problems.append(f"{r.status} from {r.url}")
           if r.status >= 500 else None)
    expect.set_options(timeout=15_000)
    yield tab
    context.close()
    assert not problems, problems


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``examples/transfer-project``, copied, with the nap workflow added."""
    root = tmp_path / "transfer-project"
    shutil.copytree(ROOT / "examples" / "transfer-project", root)
    with (root / "src" / "entry.py").open("a") as entry:
        entry.write(NAP_WORKFLOW)
    with (root / "wrangler.toml").open("a") as config:
        config.write(NAP_TOML)
    return root / "wrangler.toml"


def screenshot(tab: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def transfer(server: DevServer, amount: int) -> str:
    code, body = http("POST", server.base + "/transfers",
                      {"from": "alice", "to": "bob", "amount": amount})
    assert code == 200, body
    instance_id: str = body["id"]
    return instance_id


def nap(server: DevServer, instance_id: str, duration: str) -> None:
    code, body = server.api("POST", "/workflows/nap/instances",
                            {"id": instance_id, "params": {"nap": duration}})
    assert code == 200, body


def page_url(server: DevServer, fragment: str = "") -> str:
    return f"{server.base}/__workflows/{fragment}"


def rows(tab: Page, selector: str, attribute: str) -> list[str]:
    return [str(el.get_attribute(attribute)) for el in tab.locator(selector).all()]


def test_page_lists_workflows_and_filters_instances_by_status(
        dev_server: Callable[[Path], DevServer], project: Path, page: Page,
        tmp_path: Path) -> None:
    server = dev_server(project)
    bad, good = transfer(server, 5000), transfer(server, 50)
    server.wait_status("transfer", bad, {"errored"})
    server.wait_status("transfer", good, {"complete"})

    page.goto(page_url(server))
    workflows = page.locator("#workflow-rows tr[data-workflow]")
    expect(workflows).to_have_count(2)
    assert rows(page, "#workflow-rows tr", "data-workflow") == ["transfer", "nap"]
    expect(page.locator('tr[data-workflow="transfer"] .counts')).to_contain_text("1 complete")
    expect(page.locator('tr[data-workflow="transfer"] .counts')).to_contain_text("1 errored")
    expect(page.locator("#clock-kind")).to_have_text("real clock")
    expect(page.locator("#advance-form")).to_be_hidden()
    screenshot(page, tmp_path, "workflows")

    page.get_by_role("link", name="transfer", exact=True).first.click()
    expect(page.locator("#instance-rows tr[data-instance]")).to_have_count(2)
    assert set(rows(page, "#instance-rows tr", "data-instance")) == {bad, good}
    page.locator('#status-filter [data-status="errored"]').click()
    expect(page.locator("#instance-rows tr[data-instance]")).to_have_count(1)
    assert rows(page, "#instance-rows tr", "data-instance") == [bad]
    expect(page.locator('#status-filter [data-status="errored"]')).to_have_attribute(
        "aria-current", "true")
    screenshot(page, tmp_path, "instances-errored")
    page.locator('#status-filter [data-status="complete"]').click()
    expect(page.locator(f'#instance-rows tr[data-instance="{good}"]')).to_be_visible()
    assert rows(page, "#instance-rows tr", "data-instance") == [good]
    page.locator('#status-filter [data-status="paused"]').click()
    expect(page.locator("#instance-rows")).to_contain_text("No paused instances.")
    page.locator('#status-filter [data-status="all"]').click()
    expect(page.locator("#instance-rows tr[data-instance]")).to_have_count(2)

    page.locator(f'tr[data-instance="{bad}"] a').click()
    expect(page.locator("#instance-status")).to_have_text("errored")


def test_rolled_back_transfer_shows_steps_handlers_in_reverse_and_the_trigger(
        dev_server: Callable[[Path], DevServer], project: Path, page: Page,
        tmp_path: Path) -> None:
    server = dev_server(project)
    bad = transfer(server, 5000)
    server.wait_status("transfer", bad, {"errored"})

    page.goto(page_url(server, f"#/workflows/transfer/instances/{bad}"))
    expect(page.locator(".handler")).to_have_count(3)
    expect(page.locator("#instance-status")).to_have_text("errored")
    steps = page.locator(".cell.forward .step")
    assert rows(page, ".cell.forward .step", "data-step") == [
        "reserve funds-1", "debit source-1", "credit destination-1"]
    assert rows(page, ".cell.forward .step", "data-state") == ["success", "success", "failure"]
    failed = steps.nth(2)
    expect(failed.locator(".attempt")).to_have_count(1)
    expect(failed.locator(".attempt")).to_have_attribute("data-state", "error")
    expect(failed.locator(".attempt")).to_contain_text(
        "NonRetryableError: bob's bank refused 5000: over the limit of 1000")

    # Each handler sits beside its step; read top to bottom they ran 3, 2, 1: in reverse.
    assert rows(page, ".row .cell.backward .handler", "data-step") == [
        "reserve funds-1", "debit source-1", "credit destination-1"]
    assert rows(page, ".row .cell.backward .handler", "data-order") == ["3", "2", "1"]
    assert rows(page, ".handler", "data-state") == ["success"] * 3
    for handler in page.locator(".handler").all():
        expect(handler.locator(".attempt")).to_have_count(1)
        expect(handler.locator(".outcome")).to_have_text("success")
    expect(page.locator("#rollback-outcome")).to_have_text("complete")
    expect(page.locator("#rollback-trigger")).to_contain_text("3 of 3 handlers")
    expect(page.locator("#trigger-error")).to_have_text(
        "Triggered by NonRetryableError: bob's bank refused 5000: over the limit of 1000")
    expect(page.locator("#instance-error")).to_contain_text("NonRetryableError")
    shot = screenshot(page, tmp_path, "rolled-back-transfer")
    if os.environ.get("WORKFLOWS_EMULATOR_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
        print(f"README screenshot: {DOCS_SCREENSHOT}")


def test_each_action_changes_the_instance(
        dev_server: Callable[[Path], DevServer], project: Path, page: Page,
        tmp_path: Path) -> None:
    server = dev_server(project)
    nap(server, "n-1", "1 hour")
    server.wait_status("nap", "n-1", {"waiting"})
    page.goto(page_url(server, "#/workflows/nap/instances/n-1"))
    status = page.locator("#instance-status")
    expect(status).to_have_text("waiting")

    def click(button: str, statuses: set[str]) -> dict[str, Any]:
        page.locator(f"#act-{button}").click()
        expect(page.locator("#notice")).to_contain_text("the instance is now")
        page.locator("#notice").evaluate("el => el.textContent = ''")
        return server.wait_status("nap", "n-1", statuses)

    click("pause", {"paused"})
    expect(status).to_have_text("paused")
    screenshot(page, tmp_path, "paused")
    click("resume", {"waiting", "running"})
    expect(status).to_have_text("waiting")
    assert click("terminate", {"terminated"})["rollback"] is None
    expect(status).to_have_text("terminated")
    click("restart", {"waiting"})
    expect(status).to_have_text("waiting")
    done = click("terminate-rollback", {"terminated"})
    assert done["rollback"] == {"outcome": "complete", "error": None}
    assert [s["step"] for s in done["rollback_phase"]["steps"]] == ["prepare-1"]
    expect(status).to_have_text("terminated")
    expect(page.locator('.handler[data-step="prepare-1"]')).to_have_attribute(
        "data-state", "success")
    # cut short in its retry delay or its sleep: no longer drawn as running
    expect(page.locator('.step[data-state="interrupted"]')).to_have_count(1)
    expect(page.locator("#trigger-error")).to_have_text(
        "Triggered by Terminated: Instance terminated during rollback")
    screenshot(page, tmp_path, "terminated-with-rollback")

    nap(server, "n-2", "1 second")
    waiting = server.wait_status("nap", "n-2", {"waiting"})
    while len(waiting["steps"]) < 3:  # past the retry delay and the nap, at the event wait
        waiting = server.wait_status("nap", "n-2", {"waiting"})
    page.goto(page_url(server, "#/workflows/nap/instances/n-2"))
    expect(page.locator('.step[data-step="approval-1"] .detail')).to_contain_text(
        'waits for event "approved", timeout 1 h: waiting')
    page.locator("#event-type").fill("approved")
    page.locator("#event-payload").fill('{"by": "ann"}')
    page.locator("#send-event").click()
    done = server.wait_status("nap", "n-2", {"complete"})
    assert done["output"] == {"approved_by": "ann"}
    expect(page.locator("#instance-status")).to_have_text("complete")
    expect(page.locator('.step[data-step="approval-1"] .detail')).to_contain_text("received")


def test_the_instance_view_follows_a_running_instance(
        dev_server: Callable[[Path], DevServer], project: Path, page: Page,
        tmp_path: Path) -> None:
    server = dev_server(project)
    page.goto(page_url(server, "#/workflows/nap/instances/live"))
    expect(page.locator("#view-error")).to_contain_text("live")  # not created yet
    page.evaluate("window.notReloaded = true")
    nap(server, "live", "2 seconds")
    retry = page.locator('.step[data-step="prepare-1"] .attempt')
    expect(retry.first).to_have_attribute("data-state", "error")
    expect(retry.first).to_contain_text("ValueError: warming up")
    expect(page.locator('.step[data-step="nap-1"] .detail')).to_contain_text("sleeping until")
    expect(retry).to_have_count(2)
    expect(retry.first).to_contain_text("retried after 1 s")
    expect(page.locator('.step[data-step="nap-1"] .detail')).to_contain_text(
        re.compile(r"slept 2(\.\d)? s"))  # on the real clock: 2 s and a few ms
    expect(page.locator('.step[data-step="approval-1"]')).to_be_visible()
    screenshot(page, tmp_path, "live-waiting-for-event")
    code, body = server.api("POST", "/workflows/nap/instances/live/events/approved", {"by": "bo"})
    assert code == 200, body
    expect(page.locator("#instance-status")).to_have_text("complete")
    assert page.evaluate("window.notReloaded") is True  # redrawn in place, never reloaded


def test_advance_button_wakes_a_three_hour_sleep(
        state: Path, tmp_path: Path, page: Page) -> None:
    root = tmp_path / "travel"
    (root / "src").mkdir(parents=True)
    (root / "src" / "entry.py").write_text(textwrap.dedent(TRAVEL_ENTRY))
    (root / "wrangler.toml").write_text(TRAVEL_TOML)
    server = DevServer(root / "wrangler.toml", state, extra=["--virtual-clock"])
    server.start()
    try:
        code, body = server.api("POST", "/workflows/sleeper/instances", {"id": "s-1"})
        assert code == 200, body
        server.wait_status("sleeper", "s-1", {"waiting"})
        page.goto(page_url(server, "#/workflows/sleeper/instances/s-1"))
        expect(page.locator("#clock-kind")).to_have_text("virtual clock")
        expect(page.locator('.step[data-step="three hours-1"] .detail')).to_contain_text(
            "(3 h left)")
        page.locator("#advance-by").fill("3h")
        page.locator("#advance").click()
        expect(page.locator("#notice")).to_contain_text("Advanced the virtual clock by 3 h")
        done = server.wait_status("sleeper", "s-1", {"complete"}, timeout=5)
        assert done["output"] == "woke"
        expect(page.locator("#instance-status")).to_have_text("complete")
        expect(page.locator('.step[data-step="three hours-1"] .detail')).to_have_text(
            "slept 3 h")
        screenshot(page, tmp_path, "advanced-3h")
    finally:
        server.stop()


def test_page_route_serves_its_files_and_nothing_else(
        dev_server: Callable[[Path], DevServer], project: Path) -> None:
    server = dev_server(project)
    base = server.base + "/__workflows"
    request = urllib.request.Request(base, method="GET")
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=10)
    redirect.value.close()
    assert redirect.value.code == 308 and redirect.value.headers["location"] == "/__workflows/"
    for path, kind in [("/", "text/html"), ("/static/app.js", "text/javascript"),
                       ("/static/timeline.css", "text/css")]:
        with urllib.request.urlopen(base + path, timeout=10) as answer:
            assert answer.headers["content-type"].startswith(kind)
            assert "default-src 'self'" in answer.headers["content-security-policy"]
            assert answer.read()
    for path in ["/static/", "/static/../server.py", "/static/%2e%2e/server.py", "/nope",
                 "/static/index.htm"]:
        code, text = http("GET", base + path)
        assert code == 404 and "open /__workflows/" in text, (path, code, text)
    code, text = http("POST", base + "/", b"")
    assert code == 405
    # the API under the same prefix still answers, and the Worker keeps everything else
    code, body = http("GET", base + "/api/workflows")
    assert code == 200 and [w["name"] for w in body["result"]] == ["transfer", "nap"]
    code, body = http("GET", server.base + "/__workflowsx")
    assert code == 404 and body == {"error": "try POST /transfers"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
