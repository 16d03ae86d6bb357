"""The dashboard in headless Chromium, in the light and the dark theme: every chart drawn,
nothing wider than a laptop screen, series that stand out from their panel."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models.functions import Now
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from conveyor import enqueue_many
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskError, TaskResultStatus
from conveyor.models import TaskRecord, WorkerRecord
from conveyor.store import Outcome
from tests.browser import MINIMUM_CONTRAST, contrast, launch, needs_chromium, screenshot
from tests.factories import claim_all, enqueue, later
from tests.operations.test_admin_browser import LAPTOP, PASSWORD, log_in
from tests.tasksapp.tasks import add, echo, noop

pytestmark = [pytest.mark.browser, needs_chromium]

# WCAG 2.1 1.4.11: graphical objects against what is next to them.
GRAPHICS_CONTRAST = 3.0
# The contrast of an SVG shape's fill, or a key's background, with its panel's background.
FILL_CONTRAST_JS = """element => {
    const rgb = value => value.match(/[\\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => {
        const linear = c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
    };
    const style = getComputedStyle(element);
    const drawn = style.fill !== "none" ? style.fill : style.stroke;
    const colour = element instanceof SVGElement ? drawn : style.backgroundColor;
    const panel = getComputedStyle(element.closest(".conveyor-panel")).backgroundColor;
    const [a, b] = [luminance(rgb(colour)), luminance(rgb(panel))].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
}"""
ERROR = TaskError(exception_class_path="builtins.TimeoutError", traceback="TimeoutError\n")


def an_hour_of_work(backend: DatabaseBackend) -> None:
    """Sixty tasks finished over the last hour (one in five failed), waits growing, a
    backlog in two queues, and a worker."""
    store = backend.store
    results = enqueue_many(noop, [((), {})] * 60)
    claimed = {r.pk: r for r in claim_all(store, "worker-1", limit=100)}
    outcomes = [
        Outcome(claimed[int(r.id)], TaskResultStatus.FAILED, error=ERROR)
        if i % 5 == 0
        else Outcome(claimed[int(r.id)], TaskResultStatus.SUCCESSFUL)
        for i, r in enumerate(results)
    ]
    store.finish(worker_id="worker-1", outcomes=outcomes)
    now = timezone.now()
    for minute, result in enumerate(results):
        finished = now - timedelta(minutes=minute, seconds=5)
        started = finished - timedelta(seconds=1)
        TaskRecord.objects.filter(pk=result.id).update(
            finished_at=finished,
            last_attempted_at=started,
            available_after=started - timedelta(seconds=2 + (60 - minute) % 20),
        )
    for _ in range(4):
        enqueue(available_after=now - timedelta(minutes=2))
    enqueue(add, 1, 2, queue_name="low_priority")
    enqueue(echo, "later", available_after=later(hours=2))
    WorkerRecord.objects.create(
        worker_id="worker-1",
        backend_name="default",
        host="web-1",
        pid=4242,
        queues=[],
        last_heartbeat_at=Now(),
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_dashboard_draws_every_chart_readably(
    live_server: Any, backend: DatabaseBackend, scheme: str
) -> None:
    vendor = os.environ.get("CONVEYOR_TEST_DATABASE", "sqlite")
    an_hour_of_work(backend)
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    with sync_playwright() as playwright:
        browser = launch(playwright.chromium)
        try:
            page = browser.new_page(viewport=LAPTOP, color_scheme=scheme)  # type: ignore[arg-type]
            log_in(page, live_server.url)
            page.goto(f"{live_server.url}/admin/conveyor/taskrecord/")
            page.get_by_role("link", name="Dashboard").click()
            check_the_dashboard(page)
            screenshot(page, f"admin-dashboard-{scheme}-{vendor}")
        finally:
            browser.close()


def check_the_dashboard(page: Page) -> None:
    expect(page.get_by_role("heading", name="Task dashboard")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    finished = page.locator("#finished rect.conveyor-series--successful")
    failed = page.locator("#finished rect.conveyor-series--failed")
    assert finished.count() + failed.count() >= 55  # a bar per minute, the window's edges aside
    expect(page.locator("#finished")).to_contain_text("failed: 12")
    expect(page.locator("#wait polyline.conveyor-series--p95")).to_have_count(1)
    expect(page.locator("#due")).to_contain_text("4 due, oldest waiting 2 min")
    expect(page.locator("#due")).to_contain_text("low_priority")
    expect(page.locator("#failing")).to_contain_text("12 failed")
    expect(page.locator("#workers")).to_contain_text("Workers: 1 alive")
    for selector in (
        "#finished rect.conveyor-series--successful",
        "#finished rect.conveyor-series--failed",
        "#wait polyline.conveyor-series--p50",
        "#wait polyline.conveyor-series--p95",
        "#failing .conveyor-bar",
        "#due .conveyor-bar",
    ):
        ratio: float = page.locator(selector).first.evaluate(FILL_CONTRAST_JS)
        assert ratio >= GRAPHICS_CONTRAST, f"{selector}: contrast {ratio:.2f}"
    for selector in ("#finished h2", ".conveyor-legend", "#workers td"):
        ratio = contrast(page.locator(selector).first)
        assert ratio >= MINIMUM_CONTRAST, f"{selector}: contrast {ratio:.2f}"
    # The tooltip of a bar says when and how many.
    expect(finished.last.locator("title")).to_have_text(re.compile(r"^\d\d:\d\d: \d+ successful$"))
