"""Measure how automatic retention affects task throughput (PostgreSQL by default; set
CONVEYOR_OPERATIONS_DATABASE=sqlite or mariadb for the others).

    .venv/bin/python -m scripts.retention_drain [--history 500000] [--tasks 20000]

Keeps a purgeable history (results finished 30 days ago, cut-off 7 days, each with an
attempt) of --history rows, enqueues --tasks no-op tasks, and drains them with --workers
worker processes, alternately with OPTIONS["purge"]["automatic"] off and on. Retention runs
at its most eager: heartbeat_interval is 1 s, so a backlog is purged in runs of up to 0.5 s
every second or so. Prints the throughput of each drain (tasks finished per second between
the first start and the last finish, on the database clock) and how many history rows
retention deleted meanwhile.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import time
from datetime import timedelta

from scripts.operations_database import prepare, set_up

set_up("conveyor_drain")

from django.db import connection, transaction  # noqa: E402
from django.db.models import Max, Min  # noqa: E402
from django.utils import timezone  # noqa: E402

from conveyor.backend import DatabaseBackend  # noqa: E402
from conveyor.compat import task_backends  # noqa: E402
from conveyor.models import Attempt, TaskRecord  # noqa: E402
from scripts.operations_tasks import noop  # noqa: E402
from scripts.operations_worker import start_worker  # noqa: E402

HISTORY_PATH = "app.tasks.old"
FILL_HISTORY = """
WITH made AS (
    INSERT INTO conveyor_task (task_path, backend_name, queue_name, priority, takes_context,
        arguments, status, available_after, attempt_count, enqueued_at, started_at,
        last_attempted_at, finished_at, return_value, worker_id)
    SELECT %s, 'default', 'default', 0, false, '{"args": [], "kwargs": {}}', 'SUCCESSFUL',
        now() - interval '30 days', 1, now() - interval '30 days', now() - interval '30 days',
        now() - interval '30 days', now() - interval '30 days', 'null', ''
    FROM generate_series(1, %s)
    RETURNING id, started_at, finished_at
)
INSERT INTO conveyor_attempt (task_id, worker_id, started_at, stopped_at, status)
SELECT id, 'old-worker', started_at, finished_at, 'SUCCESSFUL' FROM made
"""


def history() -> int:
    return TaskRecord.objects.filter(task_path=HISTORY_PATH).count()


def top_up_history(rows: int) -> None:
    missing = rows - history()
    if missing <= 0:
        return
    if connection.vendor != "postgresql":
        insert_history(missing)
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(FILL_HISTORY, [HISTORY_PATH, missing])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE conveyor_task")


def insert_history(count: int, chunk: int = 5000) -> None:
    """The same history through the ORM, for databases without generate_series."""
    old = timezone.now() - timedelta(days=30)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        with transaction.atomic():
            made = TaskRecord.objects.bulk_create(
                TaskRecord(
                    task_path=HISTORY_PATH,
                    backend_name="default",
                    queue_name="default",
                    status="SUCCESSFUL",
                    available_after=old,
                    attempt_count=1,
                    enqueued_at=old,
                    started_at=old,
                    last_attempted_at=old,
                    finished_at=old,
                )
                for _ in range(size)
            )
            Attempt.objects.bulk_create(
                Attempt(
                    task=t,
                    worker_id="old-worker",
                    started_at=old,
                    stopped_at=old,
                    status="SUCCESSFUL",
                )
                for t in made
            )


def enqueue(backend: DatabaseBackend, count: int) -> None:
    records = [backend.prepare(noop, (), {}) for _ in range(count)]
    backend.store.insert(records)


def start_workers(count: int, automatic: bool) -> list[subprocess.Popen[bytes]]:
    options = {
        "purge": {"finished": "7 days", "unfinished": "30 days", "automatic": automatic},
        "heartbeat_interval": 1,
        "worker_timeout": 10,
    }
    return [start_worker(4, options=options) for _ in range(count)]


def drain(
    backend: DatabaseBackend, options: argparse.Namespace, automatic: bool
) -> tuple[float, int]:
    """Drain --tasks no-op tasks; return tasks per second and history rows purged."""
    top_up_history(options.history)
    enqueue(backend, options.tasks)
    before = history()
    workers = start_workers(options.workers, automatic)
    tasks = TaskRecord.objects.filter(task_path=noop.module_path)
    try:
        while tasks.exclude(status="SUCCESSFUL").exists():
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(60)
    span = tasks.aggregate(first=Min("started_at"), last=Max("finished_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    purged = before - history()
    tasks.delete()
    return options.tasks / seconds, purged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=500_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    prepare()
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    TaskRecord.objects.filter(task_path=noop.module_path).delete()
    results: dict[bool, list[tuple[float, int]]] = {False: [], True: []}
    print(
        f"{connection.vendor}: {options.tasks:,} no-op tasks, {options.workers} workers x 4 "
        f"threads, purgeable history {options.history:,} rows"
    )
    for round_number in range(1, options.rounds + 1):
        for automatic in (False, True):
            rate, purged = drain(backend, options, automatic)
            results[automatic].append((rate, purged))
            mode = "on " if automatic else "off"
            print(
                f"round {round_number} retention {mode}: {rate:7.0f} tasks/s, "
                f"{purged:7,} history rows purged",
                flush=True,
            )
    for automatic in (False, True):
        rates = [rate for rate, _ in results[automatic]]
        deleted = [count for _, count in results[automatic]]
        print(
            f"retention {'on ' if automatic else 'off'}: median {statistics.median(rates):.0f} "
            f"tasks/s (min {min(rates):.0f}, max {max(rates):.0f}); "
            f"median {statistics.median(deleted):,.0f} rows purged per drain"
        )


if __name__ == "__main__":
    main()
