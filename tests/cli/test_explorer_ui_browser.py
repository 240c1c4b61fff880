"""Cloudflare's Local Explorer UI, served by ``workflows-emulator dev``, in headless Chromium.

The UI's files come from the npm ``miniflare`` package in ``node_modules`` (never copied into
this repository); the test drives it as a user would: open it, find the workflow in the
sidebar, trigger an instance from its dialog, open the instance and read its steps. Elements
are checked, not pixels; a screenshot of the instance page is saved under ``tmp_path``.

Needs Debian's Chromium (``/usr/bin/chromium``), the Python ``playwright`` package (the
``test`` extra) and the npm tooling (``make .build/realruntime.stamp``, for the UI's files);
without them the test fails and says what to install (CI installs all three). Marked ``e2e``
like every test that needs Cloudflare's npm packages, so ``make test-fast`` runs on a checkout
without them; ``make test`` builds the tooling first and runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workflows_emulator.devserver.explorer_ui import find_ui

from .conftest import EXAMPLE, DevServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")


def _require_browser() -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y "
                    "chromium) to run the browser tests")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e 'emulator[test]'")
    if find_ui(EXAMPLE.parent) is None:
        pytest.fail("no node_modules/miniflare/dist/local-explorer-ui above the example project: "
                    "run `make .build/realruntime.stamp` to install the npm tooling")


def test_explorer_ui_lists_workflows_and_shows_an_instances_steps(
        dev_server: Callable[[Path], DevServer], tmp_path: Path) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    server = dev_server(EXAMPLE)
    shot = tmp_path / "explorer-instance.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            failed: list[str] = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)
            page.goto(server.base + "/cdn-cgi/local/explorer/")
            expect(page).to_have_title("Cloudflare Local Explorer")
            expect(page.get_by_text("Welcome to Local Explorer")).to_be_visible()

            # The sidebar lists the project's workflow (by binding), from /local/workers.
            link = page.get_by_role("link", name="TRANSFER")
            expect(link).to_have_attribute("href", "/cdn-cgi/local/explorer/workflows/transfer")
            link.click()
            expect(page.get_by_text("No instances found")).to_be_visible()

            # Trigger an instance from the UI's own dialog: a transfer over the limit.
            page.get_by_role("button", name="Trigger", exact=True).click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_placeholder("Auto-generated UUID if empty").fill("ui-5000")
            dialog.locator("textarea").fill('{"from": "alice", "to": "bob", "amount": 5000}')
            dialog.get_by_role("button", name="Trigger Instance").click()

            # The UI opens the new instance's page; once it has rolled back, it shows the steps
            # and the error.
            expect(page).to_have_url(server.base + "/cdn-cgi/local/explorer/workflows/transfer/"
                                     "ui-5000")
            server.wait_status("transfer", "ui-5000", {"errored"})
            page.reload()
            expect(page.get_by_text("Step History")).to_be_visible()
            for step in ("reserve funds", "debit source", "credit destination"):
                expect(page.get_by_text(step, exact=True)).to_be_visible()
            expect(page.get_by_text("b's bank refused 5000: over the limit of 1000").first
                   ).to_be_visible()
            expect(page.get_by_text("Errored", exact=True).first).to_be_visible()
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")

            # The workflow's page lists it, errored, and leads back to it.
            page.get_by_role("link", name="transfer", exact=True).click()
            row = page.get_by_text("ui-5000", exact=True)
            expect(row).to_have_count(1)
            expect(page.get_by_text("Errored").first).to_be_visible()
            row.click()
            expect(page.get_by_text("credit destination", exact=True)).to_be_visible()

            # "Restart from this step" on the second step: the UI's request, answered.
            page.get_by_label("Restart from this step").nth(1).click()
            with page.expect_response(lambda r: r.url.endswith("/ui-5000/status")) as answer:
                page.get_by_role("dialog").get_by_role("button", name="Restart from step").click()
            assert answer.value.status == 200, answer.value.text()
            assert answer.value.request.post_data_json == {
                "status": "restart", "from": {"name": "debit source", "count": 1, "type": "do"}}
            # ... and carried out: restarted, it ran again from that step and rolled back again.
            deadline = time.monotonic() + 20
            while True:
                done = server.wait_status("transfer", "ui-5000", {"errored"})
                kinds = [e["event"] for e in done["events"]]
                if kinds[-4:] == ["WORKFLOW_RESTARTED", "ROLLBACK_START", "ROLLBACK_COMPLETE",
                                  "WORKFLOW_FAILURE"]:
                    break
                assert time.monotonic() < deadline, kinds
                time.sleep(0.1)
            assert not failed, f"requests that failed: {failed}"
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000

