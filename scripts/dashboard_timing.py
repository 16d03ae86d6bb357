"""Time what the dashboard and a metrics scrape read, on a table of a million tasks
(PostgreSQL).

    CONVEYOR_OPERATIONS_DATABASE_NAME=conveyor_dashboard \\
        .venv/bin/python -m scripts.dashboard_timing --days 90
    CONVEYOR_OPERATIONS_DATABASE_NAME=conveyor_dashboard \\
        .venv/bin/python -m scripts.dashboard_timing --days 1

Fills the database (created if missing; --rows, default 1,000,000) with tasks enqueued evenly
over the last --days days (0.5% READY at the end, a few RUNNING, 2% FAILED, the rest
SUCCESSFUL), then prints the median SQL time and the number of queries of the dashboard's
hour and day windows and of Engine.gauges() (what each scrape of the metrics reads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scripts.operations_settings")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from conveyor.admin.dashboard import WINDOWS, dashboard_context  # noqa: E402
from conveyor.backend import DatabaseBackend  # noqa: E402
from conveyor.compat import task_backends  # noqa: E402
from conveyor.models import TaskRecord  # noqa: E402
from scripts.admin_changelist_timing import TASK_NAMES  # noqa: E402
from scripts.operations_database import prepare  # noqa: E402

FILL_TASKS = """
INSERT INTO conveyor_task (task_path, backend_name, queue_name, priority, takes_context,
    arguments, status, available_after, attempt_count, enqueued_at, started_at,
    last_attempted_at, finished_at, return_value, worker_id)
SELECT
    'app.tasks.' || (%(names)s::text[])[1 + g %% 20],
    'default',
    CASE WHEN g %% 20 = 0 THEN 'reports' WHEN g %% 4 = 0 THEN 'emails' ELSE 'default' END,
    0, false, '{"args": [], "kwargs": {}}'::jsonb,
    s.status, s.at,
    CASE WHEN s.status = 'READY' THEN 0 ELSE 1 END,
    s.at,
    CASE WHEN s.status = 'READY' THEN NULL ELSE s.at + interval '1 second' * (g %% 7) END,
    CASE WHEN s.status = 'READY' THEN NULL ELSE s.at + interval '1 second' * (g %% 7) END,
    CASE WHEN s.status IN ('SUCCESSFUL', 'FAILED') THEN s.at + interval '8 seconds' END,
    CASE WHEN s.status = 'SUCCESSFUL' THEN to_jsonb(g) END,
    CASE WHEN s.status = 'RUNNING' THEN 'worker-' || g %% 8 ELSE '' END
FROM generate_series(1, %(rows)s) AS g,
LATERAL (
    SELECT
        now() - interval '1 day' * %(days)s * (1 - g::float / %(rows)s) AS at,
        CASE
            WHEN g > %(rows)s * 0.995 AND g %% 25 = 0 THEN 'RUNNING'
            WHEN g > %(rows)s * 0.995 THEN 'READY'
            WHEN g %% 50 = 7 THEN 'FAILED'
            ELSE 'SUCCESSFUL'
        END AS status
) AS s
"""


def fill(rows: int, days: float) -> None:
    print(f"Filling {rows:,} tasks over {days:g} days ...", flush=True)
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE conveyor_task, conveyor_attempt, conveyor_error CASCADE")
        cursor.execute(FILL_TASKS, {"rows": rows, "names": TASK_NAMES, "days": days})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE conveyor_task")
    print(f"Filled in {time.monotonic() - started:.0f}s.")


def measure(read: Callable[[], object], repeat: int) -> tuple[float, int]:
    """Median milliseconds spent in SQL by one call, and its number of queries."""
    read()  # warm caches and the connection
    in_database, queries = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            read()
        in_database.append(sum(float(q["time"]) for q in captured) * 1000)
        queries = len(captured)
    return statistics.median(in_database), queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    prepare()
    fill(options.rows, options.days)
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    recent = TaskRecord.objects.filter(finished_at__isnull=False).count()
    print(f"{options.rows:,} rows over {options.days:g} days ({recent:,} finished)")
    print(f"{'read':<28} {'SQL ms':>7} {'queries':>7}")
    for name, window in WINDOWS.items():
        sql, queries = measure(partial(dashboard_context, backend, window), options.repeat)
        print(f"{'dashboard, ' + name:<28} {sql:>7.1f} {queries:>7}")
    sql, queries = measure(backend.store.gauges, options.repeat)
    print(f"{'gauges (a metrics scrape)':<28} {sql:>7.1f} {queries:>7}")


if __name__ == "__main__":
    main()
