"""Time the task changelist of the admin on a table of a million tasks (PostgreSQL).

    CONVEYOR_OPERATIONS_DATABASE=postgresql .venv/bin/python -m scripts.admin_changelist_timing

Fills the database `conveyor_operations` (created if missing; --rows, default 1,000,000) once,
then requests each page several times as a superuser through Django's test client and prints
the median time and the number of queries, for conveyor's admin and for the same changelist
as a plain ModelAdmin with Django's defaults (full counts, DISTINCT filter choices, DISTINCT
date drill-down, case-insensitive search).
"""

from __future__ import annotations

import argparse
import statistics
import time

from scripts.operations_database import prepare, set_up

set_up()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from conveyor.admin.tasks import TaskRecordAdmin  # noqa: E402
from conveyor.models import Attempt, TaskRecord  # noqa: E402

TASK_NAMES = [
    "send_invoice", "send_email", "resize_image", "sync_crm", "build_report", "charge_card",
    "notify_slack", "refresh_cache", "import_feed", "export_csv", "index_document",
    "send_sms", "archive_logs", "compute_stats", "render_pdf", "webhook", "cleanup",
    "geocode", "transcode", "backup",
]  # fmt: skip

# Rows in time order over 90 days: 0.5% READY at the end (a few RUNNING), 2% FAILED, the rest
# SUCCESSFUL; queues default 70%, emails 25%, reports 5%; an attempt per finished row.
FILL_TASKS = """
INSERT INTO conveyor_task (task_path, backend_name, queue_name, priority, takes_context,
    arguments, status, available_after, attempt_count, enqueued_at, started_at,
    last_attempted_at, finished_at, return_value, worker_id)
SELECT
    'app.tasks.' || (%(names)s::text[])[1 + g %% 20],
    'default',
    CASE WHEN g %% 20 = 0 THEN 'reports' WHEN g %% 4 = 0 THEN 'emails' ELSE 'default' END,
    (g %% 5) - 2,
    false,
    jsonb_build_object('args', jsonb_build_array(g, 'x'), 'kwargs', '{}'::jsonb),
    s.status,
    s.at,
    CASE WHEN s.status = 'READY' THEN 0 ELSE 1 END,
    s.at,
    CASE WHEN s.status = 'READY' THEN NULL ELSE s.at + interval '1 second' END,
    CASE WHEN s.status = 'READY' THEN NULL ELSE s.at + interval '1 second' END,
    CASE WHEN s.status IN ('SUCCESSFUL', 'FAILED') THEN s.at + interval '2 seconds' END,
    CASE WHEN s.status = 'SUCCESSFUL' THEN to_jsonb(g) END,
    CASE WHEN s.status = 'RUNNING' THEN 'worker-' || g %% 8 ELSE '' END
FROM generate_series(1, %(rows)s) AS g,
LATERAL (
    SELECT
        now() - interval '90 days' * (1 - g::float / %(rows)s) AS at,
        CASE
            WHEN g > %(rows)s * 0.995 AND g %% 25 = 0 THEN 'RUNNING'
            WHEN g > %(rows)s * 0.995 THEN 'READY'
            WHEN g %% 50 = 7 THEN 'FAILED'
            ELSE 'SUCCESSFUL'
        END AS status
) AS s
"""
FILL_ATTEMPTS = """
INSERT INTO conveyor_attempt (task_id, worker_id, started_at, stopped_at, status)
SELECT id, 'worker-' || id % 8, started_at, finished_at, status
FROM conveyor_task WHERE status IN ('SUCCESSFUL', 'FAILED')
"""
FILL_ERRORS = """
INSERT INTO conveyor_error (attempt_id, exception_class_path, traceback)
SELECT id, 'builtins.ValueError',
    E'Traceback (most recent call last):\\n  File "app/tasks.py", line 12\\nValueError: boom\\n'
FROM conveyor_attempt WHERE status = 'FAILED'
"""


def fill(rows: int) -> None:
    existing = TaskRecord.objects.count()
    if existing == rows and Attempt.objects.exists():
        print(f"Using the {rows:,} tasks already there.")
        return
    print(f"Filling {rows:,} tasks (found {existing:,}) ...", flush=True)
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE conveyor_task, conveyor_attempt, conveyor_error CASCADE")
        cursor.execute(FILL_TASKS, {"rows": rows, "names": TASK_NAMES})
        cursor.execute(FILL_ATTEMPTS)
        cursor.execute(FILL_ERRORS)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE conveyor_task")
        cursor.execute("VACUUM ANALYZE conveyor_attempt")
    print(f"Filled in {time.monotonic() - started:.0f}s.")


def pages(sample_id: int, year: int, month: int) -> list[tuple[str, str]]:
    # The changelist numbers its columns after the action checkbox.
    finished = ["action_checkbox", *TaskRecordAdmin.list_display].index("finished")
    return [
        ("no filter, page 1", ""),
        ("no filter, page 50", "p=50"),
        ("status=FAILED", "status__exact=FAILED"),
        ("status=RUNNING (rare)", "status__exact=RUNNING"),
        ("queue=reports", "queue_name=reports"),
        ("backend=default (all rows)", "backend_name=default"),
        ("status=FAILED & queue=reports", "status__exact=FAILED&queue_name=reports"),
        ("search by id", f"q={sample_id}"),
        ("search by task path", "q=send_invoice"),
        ("search, no match", "q=no.such.task"),
        ("date drill-down: a month", f"enqueued_at__year={year}&enqueued_at__month={month}"),
        ("ordered by finished_at, newest first", f"o=-{finished}"),
    ]


def measure(client: Client, url: str, repeat: int) -> tuple[float, float, int]:
    """Median total and database milliseconds of a page, and its number of queries."""
    client.get(url)  # warm caches and connections
    totals, in_database, queries = [], [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            totals.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        in_database.append(sum(float(q["time"]) for q in captured) * 1000)
        queries = len(captured)
    return statistics.median(totals), statistics.median(in_database), queries


def cell(figures: tuple[float, float, int]) -> str:
    total, database, queries = figures
    return f"{total:>7.0f} {database:>7.0f} {queries:>3}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    prepare()
    if connection.vendor != "postgresql":
        raise SystemExit("This script fills and times a PostgreSQL database.")
    fill(options.rows)
    user, _ = User.objects.get_or_create(
        username="timing", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    sample = TaskRecord.objects.filter(status="FAILED").latest("pk")
    newest = TaskRecord.objects.latest("enqueued_at").enqueued_at
    rows = pages(sample.pk, newest.year, newest.month)
    rows.append(("detail page (with attempts)", f"{sample.pk}/change/"))
    print(f"\n{options.rows:,} tasks; median of {options.repeat} requests")
    print("total: ms for the whole request; db: ms in SQL; q: number of queries\n")
    print(f"{'':36} {'conveyor admin':^19}   {'plain ModelAdmin':^19}")
    print(f"{'page':36} {'total':>7} {'db':>7} {'q':>3}   {'total':>7} {'db':>7} {'q':>3}")
    for label, query in rows:
        path = query if query.endswith("/change/") else f"?{query}" if query else ""
        ours = measure(client, f"/admin/conveyor/taskrecord/{path}", options.repeat)
        plain = measure(client, f"/plain-admin/conveyor/taskrecord/{path}", options.repeat)
        print(f"{label:36} {cell(ours)}   {cell(plain)}", flush=True)
    workers = measure(client, "/admin/conveyor/workerrecord/", options.repeat)
    print(f"{'workers page':36} {cell(workers)}")


if __name__ == "__main__":
    main()
