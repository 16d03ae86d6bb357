"""A broadcast in headless Chromium: one message to several topics, its progress bar moving
in the page as a real worker sends to each topic in turn."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser import launch, needs_chromium, screenshot
from tests.demo.conftest import FAST_WORKER
from tests.demo.ntfy_server import TOPIC, NtfyServer
from tests.demo.test_browser import PHONE, WORKER_TIMEOUT_MS, check_text_contrast, rows

pytestmark = [pytest.mark.browser, needs_chromium]


def test_a_broadcasts_progress_bar_moves_as_each_topic_is_sent(
    live_server, ntfy_server: NtfyServer, ntfy_url: str, start_worker
):
    vendor = os.environ.get("CONVEYOR_TEST_DATABASE", "sqlite")
    ntfy_server.hold_after(1)  # the first topic is answered; the second waits
    start_worker(*FAST_WORKER)
    with sync_playwright() as playwright:
        browser = launch(playwright.chromium)
        try:
            page = browser.new_page(viewport=PHONE)
            page.goto(f"{live_server.url}/")
            page.evaluate("window.sameDocument = true")
            page.get_by_label("Message", exact=True).fill("Deploy at noon")
            page.get_by_label("Also to topics", exact=True).fill("alerts, ops")
            page.get_by_role("button", name="Send").click()
            check_the_bar_moves(page, ntfy_server)
            screenshot(page, f"messagecenter-broadcast-{vendor}")
            assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
        finally:
            browser.close()
    assert [(r.path, r.body) for r in ntfy_server.received] == [
        (f"/{TOPIC}", "Deploy at noon"),
        ("/alerts", "Deploy at noon"),
        ("/ops", "Deploy at noon"),
    ]


def check_the_bar_moves(page: Page, ntfy_server: NtfyServer) -> None:
    row = rows(page).first
    bar = row.locator(".result-progress progress")
    text = row.locator(".result-progress span")
    expect(text).to_have_text(
        f"Sent to 1 of 3 topics: {TOPIC}, alerts, ops", timeout=WORKER_TIMEOUT_MS
    )
    expect(bar).to_have_attribute("value", "1")
    expect(bar).to_have_attribute("max", "3")
    expect(row.locator(".status")).to_have_text("Running")
    check_text_contrast(page, [".result-progress span"])

    ntfy_server.hold_after(2)
    expect(text).to_contain_text("Sent to 2 of 3 topics", timeout=WORKER_TIMEOUT_MS)
    expect(bar).to_have_attribute("value", "2")

    ntfy_server.release()
    expect(row.locator(".status")).to_have_text("Successful", timeout=WORKER_TIMEOUT_MS)
    expect(bar).to_have_attribute("value", "3")
    expect(text).to_contain_text("Sent to 3 of 3 topics")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
