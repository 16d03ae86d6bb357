"""The admin's dashboard on every database: charts with data and without, and its reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from conveyor.admin.charts import nice_top
from conveyor.admin.dashboard import WINDOWS
from conveyor.backend import DatabaseBackend
from conveyor.columns import WAIT_BUCKETS_MS
from conveyor.models import TaskRecord
from conveyor.store import QueueFilter, WaitCounts
from tests.factories import ago, claim_all, enqueue, later
from tests.operations.helpers import fail_once, succeed_once

pytestmark = pytest.mark.django_db

URL = "/admin/conveyor/taskrecord/dashboard/"


def page(client: Client, query: str = "") -> str:
    response = client.get(URL + query)
    assert response.status_code == 200
    return str(response.content.decode())


def rect_titles(html: str) -> list[str]:
    return re.findall(r"<rect class=\"conveyor-series--\w+\"[^>]*><title>([^<]*)</title>", html)


def test_the_dashboard_of_an_empty_backend_says_so(admin_client_as_superuser: Client) -> None:
    html = page(admin_client_as_superuser)
    assert "No task is waiting or running." in html
    assert "No task failed." in html
    assert "No worker has registered." in html
    assert "Workers: 0 alive" in html
    assert html.count('<svg class="conveyor-chart"') == 2  # drawn empty, with their axes
    assert rect_titles(html) == []
    assert "cdn" not in html.lower()
    assert "<script" not in html.split('id="content-main"')[1]


def test_the_dashboard_charts_finished_tasks_waits_queues_failures_and_workers(
    admin_client_as_superuser: Client, backend: DatabaseBackend
) -> None:
    store = backend.store
    for _ in range(3):
        succeed_once(store)
    fail_once(store)
    fail_once(store)
    enqueue(available_after=ago(minutes=3))
    enqueue(available_after=later(hours=1))
    store.register_worker(worker_id="worker-a", host="h", pid=1, queues=QueueFilter())

    html = page(admin_client_as_superuser)

    titles = rect_titles(html)
    assert sum(int(t.split(": ")[1].split()[0]) for t in titles if "successful" in t) == 3
    assert sum(int(t.split(": ")[1].split()[0]) for t in titles if "failed" in t) == 2
    assert "successful: 3" in html
    assert "failed: 2" in html
    assert re.search(r"<circle class=\"conveyor-series--p50\"", html)
    assert "1 due, oldest waiting 3 min" in html
    assert "1 deferred, 0 running" in html
    assert "2 failed" in html  # tests.tasksapp.tasks.add, twice
    assert "Workers: 1 alive" in html
    assert "worker-a" in html


def test_the_day_window_buckets_by_hour(
    admin_client_as_superuser: Client, backend: DatabaseBackend
) -> None:
    row = succeed_once(backend.store)
    TaskRecord.objects.filter(pk=row.pk).update(finished_at=ago(hours=5))
    html = page(admin_client_as_superuser, "?window=day")
    assert "last day, per hour" in html
    (title,) = rect_titles(html)
    assert title.endswith(":00: 1 successful")
    assert rect_titles(page(admin_client_as_superuser)) == []  # not in the last hour


def test_the_dashboard_reads_a_fixed_number_of_queries(
    admin_client_as_superuser: Client, backend: DatabaseBackend
) -> None:
    for _ in range(5):
        succeed_once(backend.store)
    enqueue()
    claim_all(backend.store)
    with CaptureQueriesContext(connection) as queries:
        page(admin_client_as_superuser)
    reads = [q["sql"] for q in queries.captured_queries if "conveyor_" in q["sql"]]
    # activity: 3 (the rollup's mark, its minutes, the rows finished since); gauges: 3 (READY
    # and RUNNING tasks per queue, live workers); workers: 1
    assert len(reads) == 7, reads


def test_the_dashboard_shows_rolled_up_minutes_after_their_tasks_are_purged(
    admin_client_as_superuser: Client, backend: DatabaseBackend
) -> None:
    store = backend.store
    row = fail_once(store)
    TaskRecord.objects.filter(pk=row.pk).update(finished_at=ago(minutes=10))
    store.roll_up(lag=timedelta(minutes=1), keep=timedelta(days=2), limit=10_000)
    store.purge(finished=True, older_than=timedelta(0))

    html = page(admin_client_as_superuser)

    assert [t.split(": ", 1)[1] for t in rect_titles(html)] == ["1 failed"]
    assert "1 failed" in html.split('id="failing"')[1]


def test_unknown_windows_and_backends_are_not_found(admin_client_as_superuser: Client) -> None:
    assert admin_client_as_superuser.get(URL + "?window=week").status_code == 404
    assert admin_client_as_superuser.get(URL + "?backend=nope").status_code == 404


def test_the_changelist_links_to_the_dashboard(admin_client_as_superuser: Client) -> None:
    html = admin_client_as_superuser.get("/admin/conveyor/taskrecord/").content.decode()
    assert f'href="{URL}"' in html


@pytest.mark.any_database
def test_wait_percentiles_are_nearest_rank_to_the_bound_of_their_bucket() -> None:
    # 100 tasks: 50 waited at most 10 ms, 45 more at most 1 s, the last 5 over an hour.
    within = tuple(50 if bound < 1_000 else 95 for bound in WAIT_BUCKETS_MS)
    counts = WaitCounts(datetime(2026, 12, 1, tzinfo=UTC), 100, within)
    assert counts.percentile(0.5) == timedelta(milliseconds=10)
    assert counts.percentile(0.95) == timedelta(seconds=1)
    assert counts.percentile(0.99) == timedelta(hours=1)  # beyond the last bound: the bound
    assert WaitCounts(counts.start, 0, (0,) * len(WAIT_BUCKETS_MS)).percentile(0.5) is None


@pytest.mark.any_database
def test_axes_end_at_round_numbers() -> None:
    assert [nice_top(v) for v in (0, 0.3, 1, 7, 12, 240, 5000)] == [1, 0.5, 1, 10, 20, 500, 5000]


@pytest.mark.any_database
def test_a_window_has_one_bucket_per_step_ending_with_the_current_one() -> None:
    now = datetime(2026, 11, 30, 12, 34, 56, tzinfo=UTC)
    hour = WINDOWS["hour"].starts(now)
    assert (len(hour), hour[-1], hour[0]) == (
        60,
        now.replace(second=0),
        hour[-1] - timedelta(minutes=59),
    )
    day = WINDOWS["day"].starts(now)
    assert (len(day), day[-1]) == (24, datetime(2026, 11, 30, 12, tzinfo=UTC))
