"""Measure what a timeout and the process isolation mode cost per task (PostgreSQL by
default; set CONVEYOR_OPERATIONS_DATABASE=sqlite or mariadb for the others).

    .venv/bin/python -m scripts.task_controls_cost [--tasks 5000] [--rounds 3]

Drains --tasks no-op sync tasks with one worker (--concurrency 4) in three modes: threads
(the default), threads with a timeout on every task (OPTIONS["timeout"]), and
`--isolation process`. Each worker first runs a warm-up batch (so that process mode's
children are started), then the measured batch; the rate is tasks finished per second between
the batch's first start and last finish, on the database clock. Prints each drain, then per
mode the median rate and the median time per task.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import time

from scripts.operations_database import prepare, set_up

set_up("conveyor_controls")

from django.db import connection  # noqa: E402
from django.db.models import Max, Min  # noqa: E402

from conveyor.backend import DatabaseBackend  # noqa: E402
from conveyor.compat import task_backends  # noqa: E402
from conveyor.models import TaskRecord  # noqa: E402
from scripts.operations_tasks import noop  # noqa: E402
from scripts.operations_worker import start_worker  # noqa: E402

CONCURRENCY = 4
WARM_UP = 40
# Each mode: its worker flags and OPTIONS.
MODES: dict[str, tuple[list[str], dict[str, object]]] = {
    "threads": ([], {}),
    "threads + timeout": ([], {"timeout": 60}),
    "process isolation": (["--isolation", "process"], {}),
}


def enqueue(backend: DatabaseBackend, count: int) -> list[int]:
    records = [backend.prepare(noop, (), {}) for _ in range(count)]
    backend.store.insert(records)
    return [record.pk for record in records if record.pk is not None]


def wait_done(ids: list[int], worker: subprocess.Popen[bytes]) -> None:
    pending = TaskRecord.objects.filter(pk__in=ids).exclude(status="SUCCESSFUL")
    while pending.exists():
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with status {worker.returncode}")
        time.sleep(0.1)


def drain(backend: DatabaseBackend, mode: str, tasks: int) -> float:
    """Drain `tasks` no-op tasks in one mode; return tasks per second."""
    flags, options = MODES[mode]
    worker = start_worker(CONCURRENCY, *flags, options=options)
    try:
        wait_done(enqueue(backend, WARM_UP), worker)
        ids = enqueue(backend, tasks)
        wait_done(ids, worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    batch = TaskRecord.objects.filter(pk__in=ids)
    span = batch.aggregate(first=Min("started_at"), last=Max("finished_at"))
    TaskRecord.objects.filter(task_path=noop.module_path).delete()
    seconds: float = (span["last"] - span["first"]).total_seconds()
    return tasks / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    prepare()
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    TaskRecord.objects.filter(task_path=noop.module_path).delete()
    print(
        f"{connection.vendor}: {options.tasks:,} no-op sync tasks, one worker, "
        f"--concurrency {CONCURRENCY}",
        flush=True,
    )
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_number in range(1, options.rounds + 1):
        for mode in MODES:
            rate = drain(backend, mode, options.tasks)
            rates[mode].append(rate)
            print(f"round {round_number} {mode:>17}: {rate:7.0f} tasks/s", flush=True)
    base = statistics.median(rates["threads"])
    for mode, found in rates.items():
        median = statistics.median(found)
        print(
            f"{mode:>17}: median {median:.0f} tasks/s (min {min(found):.0f}, "
            f"max {max(found):.0f}), {1e6 / median:.0f} us per task "
            f"({1e6 / median - 1e6 / base:+.0f} us against threads)"
        )


if __name__ == "__main__":
    main()
