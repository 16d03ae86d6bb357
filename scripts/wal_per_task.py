"""The write-ahead log PostgreSQL writes per no-op task, for one source tree or several (an
A/B of the schema and the hot statements): a count of bytes, steady from run to run where
timings on a shared machine are not.

    .venv/bin/python -m scripts.wal_per_task [--tasks 10000] [--batch 16] SRC [SRC ...]

Per SRC (a conveyor source tree, put first on the path): a fresh benchmark database migrated
by that tree, `tasks` no-op tasks enqueued in one call, then claimed and finished through
the engine, `batch` at a time on one connection (no worker, so nothing else writes). Prints
one JSON line per SRC with the WAL bytes per task of the enqueue and of the claims and
finishes (`pg_current_wal_lsn()` before and after each).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks import processes
from benchmarks.systems import SYSTEMS
from scripts.drain_cpu import harness

INSIDE = "WAL_PER_TASK_INSIDE"
WORKER_ID = "wal-per-task"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=16)
    options = parser.parse_args()
    if os.environ.get(INSIDE):
        measure(os.environ[INSIDE], options.tasks, options.batch)
        return
    system = SYSTEMS["conveyor"]
    for index, src in enumerate(options.sources):
        tree = harness(src, index, "postgresql")
        tree.prepare(system)
        target = tree.fresh(system)
        # harness() points the benchmark's environment at `src`.
        env = processes.environment(system, target, **{INSIDE: src})
        subprocess.run(
            [sys.executable, "-m", "scripts.wal_per_task", *sys.argv[1:]],
            env=env,
            cwd=processes.ROOT,
            check=True,
        )


def measure(src: str, tasks: int, batch: int) -> None:
    import django

    django.setup()
    from django.db import connection
    from django.tasks import task_backends

    import conveyor
    from benchmarks.tasks import noop
    from conveyor.backend import DatabaseBackend
    from conveyor.compat import TaskResultStatus
    from conveyor.store import Outcome, QueueFilter

    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    store = backend.store
    queues = QueueFilter(include=frozenset({"default"}))
    store.register_worker(worker_id=WORKER_ID, host="here", pid=os.getpid(), queues=queues)

    def lsn() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()")
            return str(cursor.fetchone()[0])

    def since(start: str) -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [start])
            return float(cursor.fetchone()[0]) / tasks

    began = lsn()
    conveyor.enqueue_many(noop, [((), {})] * tasks)
    enqueue = since(began)
    began = lsn()
    done = 0
    while records := store.claim(worker_id=WORKER_ID, queues=queues, limit=batch):
        store.finish(
            worker_id=WORKER_ID,
            outcomes=[Outcome(record, TaskResultStatus.SUCCESSFUL) for record in records],
        )
        done += len(records)
    assert done == tasks, done
    result = {
        "src": src,
        "enqueue_bytes": round(enqueue),
        "claim_finish_bytes": round(since(began)),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
