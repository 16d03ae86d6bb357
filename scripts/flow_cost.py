"""Measure what flow control costs per task when its limits do not bind (PostgreSQL by
default; set CONVEYOR_OPERATIONS_DATABASE=sqlite or mariadb for the others).

    .venv/bin/python -m scripts.flow_cost [--tasks 3000] [--rounds 3]

Drains --tasks no-op tasks with one worker (--concurrency 4): plain; with a concurrency key
whose limit is never reached (each finish still gives its slot back under the key's lock);
with a rate limit never reached (each claim still counts its starts); unique (each call its
own key). Rates are tasks finished per second between the batch's first start and last
finish, on the database clock; prints per mode the median and its ratio to plain.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import time
from typing import Any

from scripts.operations_database import prepare, set_up

set_up("conveyor_flow")

from django.db import connection  # noqa: E402
from django.db.models import Max, Min  # noqa: E402

from conveyor import enqueue_many  # noqa: E402
from conveyor.models import TaskRecord  # noqa: E402
from scripts.operations_tasks import limited_noop, noop, rated_noop, unique_noop  # noqa: E402
from scripts.operations_worker import start_worker  # noqa: E402

CONCURRENCY = 4
MODES: dict[str, tuple[Any, bool]] = {
    "plain": (noop, False),
    "concurrency key": (limited_noop, False),
    "rate limit": (rated_noop, False),
    "unique": (unique_noop, True),
}


def enqueue(task: Any, count: int, numbered: bool) -> list[int]:
    calls: list[tuple[tuple[int, ...], dict[str, Any]]] = [
        ((n,) if numbered else (), {}) for n in range(count)
    ]
    results: list[Any] = enqueue_many(task, calls)
    return [int(result.id) for result in results]


def drain(mode: str, tasks: int) -> float:
    task, numbered = MODES[mode]
    ids = enqueue(task, tasks, numbered)
    worker = start_worker(CONCURRENCY)
    try:
        pending = TaskRecord.objects.filter(pk__in=ids).exclude(status="SUCCESSFUL")
        while pending.exists():
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with status {worker.returncode}")
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    span = TaskRecord.objects.filter(pk__in=ids).aggregate(
        first=Min("started_at"), last=Max("finished_at")
    )
    TaskRecord.objects.all().delete()
    seconds: float = (span["last"] - span["first"]).total_seconds()
    return tasks / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    prepare()
    TaskRecord.objects.all().delete()
    print(f"{connection.vendor}: {options.tasks:,} no-op tasks per drain, one worker, "
          f"--concurrency {CONCURRENCY}", flush=True)  # fmt: skip
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_number in range(1, options.rounds + 1):
        for mode in MODES:
            rates[mode].append(drain(mode, options.tasks))
            print(f"round {round_number} {mode:>15}: {rates[mode][-1]:7.0f} tasks/s", flush=True)
    base = statistics.median(rates["plain"])
    for mode, found in rates.items():
        median = statistics.median(found)
        print(f"{mode:>15}: median {median:.0f} tasks/s ({median / base:.2f} of plain)")


if __name__ == "__main__":
    main()
