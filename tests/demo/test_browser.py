"""The messagecenter page in headless Chromium, with a real worker and a local ntfy endpoint."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models.functions import Now
from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from conveyor.models import TaskRecord
from tests.browser import MINIMUM_CONTRAST, contrast, launch, needs_chromium, screenshot
from tests.conftest import wait_until
from tests.demo.conftest import FAST_WORKER
from tests.demo.ntfy_server import NtfyServer

PHONE: ViewportSize = {"width": 375, "height": 812}
# Generous: a worker process starts, claims and runs the task on a busy 2-core machine.
WORKER_TIMEOUT_MS = 30_000
# Every kind of text the page shows once a message was sent and another failed.
TEXTS = [
    ".site-header p",
    "label",
    ".helptext",
    "button",
    ".subscribe a",
    ".admin-link a",
    ".command",
    ".result-meta time",
    ".status--successful",
    ".status--failed",
    ".result-error p",
]

pytestmark = [pytest.mark.browser, needs_chromium]


def rows(page: Page) -> Locator:
    return page.locator("#results > li")


def test_messages_go_from_the_page_through_a_worker_to_ntfy(
    live_server, ntfy_server: NtfyServer, ntfy_url: str, start_worker
):
    vendor = os.environ.get("CONVEYOR_TEST_DATABASE", "sqlite")
    with sync_playwright() as playwright:
        browser = launch(playwright.chromium)
        try:
            page = browser.new_page(viewport=PHONE)
            page.goto(f"{live_server.url}/")
            check_layout_and_landmarks(page, ntfy_url)
            check_a_message_is_sent(page, ntfy_server, start_worker)
            check_a_failure_is_retried(page, ntfy_server)
            screenshot(page, f"messagecenter-retrying-{vendor}")
            check_the_last_failure_shows_its_error(page)
            check_text_contrast(page, TEXTS)
            screenshot(page, f"messagecenter-{vendor}")
            check_bad_input_is_shown_on_the_form(page)
            check_the_page_works_without_javascript(browser, live_server.url)
        finally:
            browser.close()


def check_layout_and_landmarks(page: Page, ntfy_url: str) -> None:
    expect(page.get_by_role("banner")).to_contain_text("Message center")
    expect(page.get_by_role("main")).to_be_visible()
    expect(page.get_by_role("heading", name="Sent messages")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_js_property("tagName", "TEXTAREA")
    expect(page.get_by_label("Title", exact=True)).to_have_attribute("type", "text")
    expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")
    expect(page.get_by_text(f"curl -s {ntfy_url}/json")).to_be_visible()
    # Nothing wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # Keyboard focus is visible.
    page.get_by_label("Also to topics", exact=True).focus()
    page.keyboard.press("Tab")
    send = page.get_by_role("button", name="Send")
    expect(send).to_be_focused()
    assert send.evaluate("b => getComputedStyle(b).outlineStyle") == "solid"
    assert send.evaluate("b => parseFloat(getComputedStyle(b).outlineWidth)") >= 2


def check_a_message_is_sent(page: Page, ntfy_server: NtfyServer, start_worker) -> None:
    page.evaluate("window.sameDocument = true")
    page.get_by_label("Message", exact=True).fill("Hello from the browser")
    page.get_by_label("Title", exact=True).fill("Greeting")
    page.get_by_role("button", name="Send").click()

    first = rows(page).first
    expect(first).to_contain_text("Hello from the browser")
    # No worker runs yet: the row stays Ready, and polls.
    expect(first.locator(".status")).to_have_text("Ready")
    expect(page.locator("#announcer")).to_have_text(f"Message #{row_id(first)}: Ready")
    expect(page.get_by_label("Message", exact=True)).to_have_value("")

    # A failure is tried once more, after an hour unless the test brings it forward.
    start_worker(*FAST_WORKER, options={"max_attempts": 2, "backoff_factor": 3600})
    expect(first.locator(".status")).to_have_text("Successful", timeout=WORKER_TIMEOUT_MS)
    expect(page.locator("#announcer")).to_have_text(f"Message #{row_id(first)}: Successful")
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    wait_until(lambda: ntfy_server.received, what="ntfy to receive the message")
    [received] = ntfy_server.received
    assert (received.path, received.body, received.title) == (
        "/conveyor-test",
        "Hello from the browser",
        "Greeting",
    )


def check_a_failure_is_retried(page: Page, ntfy_server: NtfyServer) -> None:
    ntfy_server.status = 500
    page.get_by_label("Message", exact=True).fill("This one fails")
    page.get_by_role("button", name="Send").click()

    expect(rows(page)).to_have_count(2)
    failed = rows(page).first
    expect(failed).to_contain_text("This one fails")
    expect(failed.locator(".status")).to_have_text("Retrying", timeout=WORKER_TIMEOUT_MS)
    pk = row_id(failed)
    due = off_the_event_loop(lambda: TaskRecord.objects.get(pk=pk).available_after)
    expect(failed.locator(".result-retry")).to_have_text(f"Next attempt at {due:%H:%M:%S} UTC")
    expect(failed.locator(".result-error")).to_contain_text(
        "Attempt 1 failed: httpx.HTTPStatusError"
    )
    expect(page.locator("#announcer")).to_have_text(f"Message #{pk}: Retrying")
    check_text_contrast(page, [".status--retrying", ".result-retry"])
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def check_the_last_failure_shows_its_error(page: Page) -> None:
    failed, sent = rows(page).nth(0), rows(page).nth(1)
    # The back-off is an hour: bring the retry forward, as the admin's "Run now" does.
    pk = row_id(failed)
    off_the_event_loop(lambda: TaskRecord.objects.filter(pk=pk).update(available_after=Now()))
    expect(failed.locator(".status")).to_have_text("Failed", timeout=WORKER_TIMEOUT_MS)
    expect(failed.locator(".result-error")).to_contain_text("Failed after 2 attempts")
    expect(failed.locator(".result-error")).to_contain_text("httpx.HTTPStatusError")
    expect(failed.locator(".result-error")).to_contain_text("500 Internal Server Error")
    expect(failed.locator(".result-retry")).to_have_count(0)
    expect(sent.locator(".status")).to_have_text("Successful")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def check_text_contrast(page: Page, selectors: list[str]) -> None:
    for selector in selectors:
        ratio = contrast(page.locator(selector).first)
        assert ratio >= MINIMUM_CONTRAST, f"{selector}: contrast {ratio:.2f} < {MINIMUM_CONTRAST}"


def check_bad_input_is_shown_on_the_form(page: Page) -> None:
    # Blank passes the browser's `required` check; the server strips it and refuses.
    page.get_by_label("Message", exact=True).fill("   ")
    page.get_by_role("button", name="Send").click()

    expect(page.locator("#id_message_error")).to_have_text("Write a message to send.")
    expect(page.get_by_label("Message", exact=True)).to_have_attribute("aria-invalid", "true")
    check_text_contrast(page, [".errorlist"])
    expect(rows(page)).to_have_count(2)


def check_the_page_works_without_javascript(browser: Browser, url: str) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(f"{url}/")
        page.get_by_label("Message", exact=True).fill("Sent without JavaScript")
        page.get_by_role("button", name="Send").click()

        expect(page).to_have_url(f"{url}/")
        expect(rows(page)).to_have_count(3)
        expect(rows(page).first).to_contain_text("Sent without JavaScript")
    finally:
        context.close()


def off_the_event_loop[T](query: Callable[[], T]) -> T:
    """Run database code on a thread of its own and close its connection.

    Playwright's sync API runs an event loop in this thread, where Django refuses queries;
    the code must not call Playwright.
    """

    def run() -> T:
        try:
            return query()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def row_id(row: Locator) -> str:
    return str(row.get_attribute("id")).removeprefix("result-")
