"""Time what the dashboard and a metrics scrape read, on a table of a million tasks
(PostgreSQL, SQLite or MariaDB: CONVEYOR_OPERATIONS_DATABASE).

    CONVEYOR_OPERATIONS_DATABASE_NAME=conveyor_dashboard \\
        .venv/bin/python -m scripts.dashboard_timing --days 90
    CONVEYOR_OPERATIONS_DATABASE=sqlite CONVEYOR_OPERATIONS_DATABASE_NAME=/tmp/dashboard.sqlite3 \\
        .venv/bin/python -m scripts.dashboard_timing --days 1

Fills the database (created if missing; --rows, default 1,000,000) with tasks enqueued evenly
over the last --days days (0.5% READY at the end, a few RUNNING, 2% FAILED, the rest
SUCCESSFUL), then rolls the finished tasks up per minute as the worker's maintenance does
(timing the catch-up), and prints the median SQL time and the number of queries of the
dashboard's hour and day windows, with the rollup up to date and with none (every finished
row of the window read from the task table, as before the rollup or before any worker ran),
and of Engine.gauges() (what each scrape of the metrics reads): the median of --repeat
runs and the least. --no-fill times the rows a previous run left.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial

from scripts.operations_database import prepare, set_up

set_up()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from conveyor.admin.dashboard import WINDOWS, dashboard_context  # noqa: E402
from conveyor.backend import DatabaseBackend  # noqa: E402
from conveyor.compat import task_backends  # noqa: E402
from conveyor.models import MinuteCount, RollupMark, TaskRecord  # noqa: E402
from conveyor.store import Engine  # noqa: E402
from conveyor.worker.rollup import (  # noqa: E402
    ROLLUP_BATCH_MINUTES,
    ROLLUP_KEEP,
    ROLLUP_LAG,
)
from scripts.admin_changelist_timing import TASK_NAMES  # noqa: E402

FILL_POSTGRESQL = """
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


# The same rows on SQLite: times as Django stores them (text, UTC), from a recursive series.
FILL_SQLITE = """
INSERT INTO conveyor_task (task_path, backend_name, queue_name, priority, takes_context,
    arguments, status, available_after, attempt_count, enqueued_at, started_at,
    last_attempted_at, finished_at, return_value, worker_id)
WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series WHERE g < %(rows)s),
s AS (
    SELECT g,
        julianday('now') - %(days)s * (1 - CAST(g AS REAL) / %(rows)s) AS at,
        CASE
            WHEN g > %(rows)s * 0.995 AND g %% 25 = 0 THEN 'RUNNING'
            WHEN g > %(rows)s * 0.995 THEN 'READY'
            WHEN g %% 50 = 7 THEN 'FAILED'
            ELSE 'SUCCESSFUL'
        END AS status
    FROM series
)
SELECT
    'app.tasks.' || json_extract(%(names)s, '$[' || (g %% 20) || ']'),
    'default',
    CASE WHEN g %% 20 = 0 THEN 'reports' WHEN g %% 4 = 0 THEN 'emails' ELSE 'default' END,
    0, 0, '{"args": [], "kwargs": {}}',
    status, strftime('%%Y-%%m-%%d %%H:%%M:%%f', at),
    CASE WHEN status = 'READY' THEN 0 ELSE 1 END,
    strftime('%%Y-%%m-%%d %%H:%%M:%%f', at),
    CASE WHEN status <> 'READY'
        THEN strftime('%%Y-%%m-%%d %%H:%%M:%%f', at + (g %% 7) / 86400.0) END,
    CASE WHEN status <> 'READY'
        THEN strftime('%%Y-%%m-%%d %%H:%%M:%%f', at + (g %% 7) / 86400.0) END,
    CASE WHEN status IN ('SUCCESSFUL', 'FAILED')
        THEN strftime('%%Y-%%m-%%d %%H:%%M:%%f', at + 8 / 86400.0) END,
    CASE WHEN status = 'SUCCESSFUL' THEN CAST(g AS TEXT) END,
    CASE WHEN status = 'RUNNING' THEN 'worker-' || (g %% 8) ELSE '' END
FROM s
"""

# The same rows on MariaDB, from its sequence engine; times in UTC, as Django stores them.
FILL_MARIADB = """
INSERT INTO conveyor_task (task_path, backend_name, queue_name, priority, takes_context,
    arguments, status, available_after, attempt_count, enqueued_at, started_at,
    last_attempted_at, finished_at, return_value, worker_id)
SELECT
    CONCAT('app.tasks.', JSON_UNQUOTE(JSON_EXTRACT(%(names)s, CONCAT('$[', g %% 20, ']')))),
    'default',
    CASE WHEN g %% 20 = 0 THEN 'reports' WHEN g %% 4 = 0 THEN 'emails' ELSE 'default' END,
    0, false, '{"args": [], "kwargs": {}}',
    status, at,
    CASE WHEN status = 'READY' THEN 0 ELSE 1 END,
    at,
    CASE WHEN status <> 'READY' THEN at + INTERVAL (g %% 7) SECOND END,
    CASE WHEN status <> 'READY' THEN at + INTERVAL (g %% 7) SECOND END,
    CASE WHEN status IN ('SUCCESSFUL', 'FAILED') THEN at + INTERVAL 8 SECOND END,
    CASE WHEN status = 'SUCCESSFUL' THEN CAST(g AS CHAR) END,
    CASE WHEN status = 'RUNNING' THEN CONCAT('worker-', g %% 8) ELSE '' END
FROM (
    SELECT seq AS g,
        UTC_TIMESTAMP(6) - INTERVAL ROUND(86400000000 * %(days)s * (1 - seq / %(rows)s))
            MICROSECOND AS at,
        CASE
            WHEN seq > %(rows)s * 0.995 AND seq %% 25 = 0 THEN 'RUNNING'
            WHEN seq > %(rows)s * 0.995 THEN 'READY'
            WHEN seq %% 50 = 7 THEN 'FAILED'
            ELSE 'SUCCESSFUL'
        END AS status
    FROM seq_1_to_{rows}
) AS s
"""

TABLES = (
    "conveyor_error",
    "conveyor_attempt",
    "conveyor_task",
    "conveyor_minute",
    "conveyor_rollup_mark",
)


def fill(rows: int, days: float) -> None:
    print(f"Filling {rows:,} tasks over {days:g} days on {connection.vendor} ...", flush=True)
    started = time.monotonic()
    vendor = connection.vendor
    with transaction.atomic(), connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
            cursor.execute(FILL_POSTGRESQL, {"rows": rows, "names": TASK_NAMES, "days": days})
        else:
            for table in TABLES:
                cursor.execute(f"DELETE FROM {table}")
            statement = (
                FILL_SQLITE if vendor == "sqlite" else FILL_MARIADB.replace("{rows}", str(rows))
            )
            cursor.execute(statement, {"rows": rows, "names": json.dumps(TASK_NAMES), "days": days})
    analyze("conveyor_task")
    print(f"Filled in {time.monotonic() - started:.0f}s.")


def analyze(table: str) -> None:
    """Refresh the planner's statistics of a table."""
    statement = {"postgresql": "VACUUM ANALYZE {}", "sqlite": "ANALYZE {}"}
    with connection.cursor() as cursor:
        cursor.execute(statement.get(connection.vendor, "ANALYZE TABLE {}").format(table))
        if connection.vendor == "mysql":
            cursor.fetchall()


def roll_up(store: Engine) -> None:
    """Catch the rollup up as the worker's maintenance does, in batches; print how long."""
    started, minutes, slowest = time.monotonic(), 0, 0.0
    while True:
        batch = time.monotonic()
        rolled = store.roll_up(lag=ROLLUP_LAG, keep=ROLLUP_KEEP, limit=ROLLUP_BATCH_MINUTES)
        slowest = max(slowest, time.monotonic() - batch)
        minutes += rolled
        if rolled < ROLLUP_BATCH_MINUTES:
            break
    rows = MinuteCount.objects.count()
    analyze("conveyor_minute")  # as autovacuum would soon after
    print(
        f"Rolled up {minutes:,} minutes into {rows:,} rows in {time.monotonic() - started:.1f}s"
        f" (slowest batch of {ROLLUP_BATCH_MINUTES} minutes: {slowest * 1000:.0f} ms)"
    )


def measure(read: Callable[[], object], repeat: int) -> tuple[float, float, int]:
    """Median and least milliseconds spent in SQL by one call (the least is the one other
    work on the machine disturbed least), and its number of queries."""
    read()  # warm caches and the connection
    in_database, queries = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            read()
        in_database.append(sum(float(q["time"]) for q in captured) * 1000)
        queries = len(captured)
    return statistics.median(in_database), min(in_database), queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--no-fill", action="store_true", help="time the rows a previous run left, rolled up"
    )
    options = parser.parse_args()
    prepare()
    if not options.no_fill:
        fill(options.rows, options.days)
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    recent = TaskRecord.objects.filter(finished_at__isnull=False).count()
    print(f"{TaskRecord.objects.count():,} rows ({recent:,} finished)")
    roll_up(backend.store)
    print(f"{'read':<36} {'SQL ms':>7} {'least':>7} {'queries':>7}")
    mark = RollupMark.objects.get()
    for rolled in (True, False):
        if not rolled:
            RollupMark.objects.all().delete()  # as before any worker rolled up
        for name, window in WINDOWS.items():
            read = partial(dashboard_context, backend, window)
            sql, least, queries = measure(read, options.repeat)
            label = f"dashboard, {name}" + ("" if rolled else ", no rollup")
            print(f"{label:<36} {sql:>7.1f} {least:>7.1f} {queries:>7}")
    mark.save()  # a run with --no-fill goes on from it
    sql, least, queries = measure(backend.store.gauges, options.repeat)
    print(f"{'gauges (a metrics scrape)':<36} {sql:>7.1f} {least:>7.1f} {queries:>7}")


if __name__ == "__main__":
    main()
