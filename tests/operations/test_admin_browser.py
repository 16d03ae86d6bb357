"""The admin in headless Chromium: the task list fits a 1400 px screen, a failed task's page
leads with its error, and the workers page shows who is alive."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models.functions import Now
from playwright.sync_api import Locator, Page, ViewportSize, expect, sync_playwright

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskError, TaskResultStatus
from conveyor.models import TaskRecord, WorkerRecord
from conveyor.store import Engine, Outcome
from tests.browser import MINIMUM_CONTRAST, contrast, launch, needs_chromium, screenshot
from tests.factories import claim_all, enqueue, later
from tests.operations.helpers import claim_due, succeed_once
from tests.tasksapp.tasks import echo

pytestmark = [pytest.mark.browser, needs_chromium]

LAPTOP: ViewportSize = {"width": 1400, "height": 900}
DESKTOP: ViewportSize = {"width": 1920, "height": 1080}
PASSWORD = "browser-test-password"
# As a worker names itself by default: host, pid and a random part.
LONG_WORKER_ID = "worker-7f9c2b1d4e-prod-eu-west-1.internal.example.com-48213-Zq8LmP2x"
LONG_TASK_PATH = "myproject.notifications.tasks.send_weekly_digest_to_every_subscriber"
REFUSED = TaskError(
    exception_class_path="httpx.ConnectError",
    traceback=(
        "Traceback (most recent call last):\n"
        '  File "/srv/app/notify.py", line 12, in send\n'
        "    response = client.post(url, content=message)\n"
        "httpx.ConnectError: [Errno 111] Connection refused while sending to "
        "https://ntfy.example.com/alerts-for-the-operations-team\n"
    ),
)


def fail(store: Engine, worker_id: str = LONG_WORKER_ID) -> None:
    (claimed,) = claim_due(store, worker_id)
    outcome = Outcome(claimed, TaskResultStatus.FAILED, error=REFUSED)
    store.finish(worker_id=worker_id, outcomes=[outcome])


def history(backend: DatabaseBackend) -> TaskRecord:
    """Tasks in every state, a worker; return the task that failed three times."""
    store = backend.store
    succeed_once(store)
    failed = enqueue(echo, "to a host that is down", queue_name="low_priority")
    for _ in range(3):  # max_attempts of low_priority
        fail(store)
    retrying = enqueue(queue_name="low_priority")
    fail(store)
    TaskRecord.objects.filter(pk=retrying.pk).update(available_after=later(seconds=40))
    # A long path, as a project's own tasks have: it may wrap, never widen the table.
    enqueue(echo, "tomorrow", available_after=later(days=1), task_path=LONG_TASK_PATH)
    enqueue(echo, "running", priority=5)
    claim_all(store, LONG_WORKER_ID)
    enqueue()
    WorkerRecord.objects.create(
        worker_id=LONG_WORKER_ID,
        backend_name="default",
        host="prod-eu-west-1",
        pid=48213,
        queues=["default", "low_priority"],
        last_heartbeat_at=Now(),
    )
    return TaskRecord.objects.get(pk=failed.pk)


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/admin/login/")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def test_the_admin_reads_at_a_glance_on_a_laptop_and_a_desktop_screen(
    live_server: Any, backend: DatabaseBackend
) -> None:
    vendor = os.environ.get("CONVEYOR_TEST_DATABASE", "sqlite")
    failed = history(backend)
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    with sync_playwright() as playwright:
        browser = launch(playwright.chromium)
        try:
            page = browser.new_page(viewport=LAPTOP)
            log_in(page, live_server.url)
            page.goto(f"{live_server.url}/admin/conveyor/taskrecord/")
            check_the_task_list(page, LAPTOP)
            screenshot(page, f"admin-tasks-1400-{vendor}")
            page.set_viewport_size(DESKTOP)
            check_the_task_list(page, DESKTOP)
            worker = page.locator("td.field-worker span[title]")
            expect(worker).to_have_text("worker-7…q8LmP2x")
            expect(worker).to_have_attribute("title", LONG_WORKER_ID)
            screenshot(page, f"admin-tasks-1920-{vendor}")

            page.set_viewport_size(LAPTOP)
            page.goto(f"{live_server.url}/admin/conveyor/taskrecord/{failed.pk}/change/")
            check_a_failed_task(page)
            screenshot(page, f"admin-task-failed-{vendor}")

            page.goto(f"{live_server.url}/admin/conveyor/workerrecord/")
            check_the_workers(page)
            screenshot(page, f"admin-workers-1400-{vendor}")
        finally:
            browser.close()


def check_the_task_list(page: Page, viewport: ViewportSize) -> None:
    expect(page.get_by_role("heading", name="Select task to view")).to_be_visible()
    assert_no_horizontal_overflow(page, viewport)
    for column in ("task", "status_badge", "due", "enqueued", "finished", "worker", "last_error"):
        assert_within_the_table(page, page.locator(f"th.column-{column}"))
    expect(page.locator("td.field-due")).to_contain_text(["in 23 h 59 min"])
    expect(page.locator("td.field-due", has_text="retrying")).to_have_count(1)
    expect(page.locator("td.field-due", has_text="deferred")).to_have_count(1)
    excerpt = page.locator("td.field-last_error .conveyor-excerpt").first
    expect(excerpt).to_have_attribute("title", re.compile(r"^httpx\.ConnectError: \[Errno 111\]"))
    for status in ("ready", "running", "successful", "failed"):
        badge = page.locator(f".conveyor-badge--{status}").first
        ratio = contrast(badge)
        assert ratio >= MINIMUM_CONTRAST, f"{status} badge: contrast {ratio:.2f}"
    # Times to the second.
    expect(page.locator("td.field-enqueued time").first).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    )


def assert_no_horizontal_overflow(page: Page, viewport: ViewportSize) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    results = page.locator("#changelist-form .results")
    scroll, client = results.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert scroll <= client, f"the table scrolls sideways: {scroll} px in {client} px"


def assert_within_the_table(page: Page, header: Locator) -> None:
    expect(header).to_be_visible()
    right = header.evaluate("e => e.getBoundingClientRect().right")
    edge = page.locator("#changelist-form .results").evaluate(
        "e => e.getBoundingClientRect().right"
    )
    assert right <= edge + 0.5, f"{header}: ends at {right} px, beyond the table's {edge} px"


def check_a_failed_task(page: Page) -> None:
    failure = page.locator(".conveyor-failure")
    expect(failure).to_contain_text("Error of attempt 3")
    expect(failure).to_contain_text("httpx.ConnectError: [Errno 111] Connection refused")
    error_top = failure.evaluate("e => e.getBoundingClientRect().top")
    fields_top = page.locator("fieldset.module").first.evaluate(
        "e => e.getBoundingClientRect().top"
    )
    assert error_top < fields_top, "the error is not above the fields"
    traceback = failure.locator("pre.conveyor-traceback")
    assert traceback.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    assert traceback.evaluate("e => e.scrollWidth <= e.clientWidth"), "the traceback is clipped"
    numbers = page.locator(".conveyor-attempts tbody th.field-number")
    expect(numbers).to_have_text(["1", "2", "3"])
    # A failed task can be retried, and nothing else.
    expect(page.locator(".conveyor-actions button")).to_have_text(["Retry now"])
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]


def check_the_workers(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    alive = page.locator("th.column-alive")
    assert_within_the_table(page, alive)
    expect(page.locator("td.field-alive img")).to_have_attribute("alt", "True")
    expect(page.locator("td.field-heartbeat_age")).to_have_text(re.compile(r"^(now|\d+ s ago)$"))
