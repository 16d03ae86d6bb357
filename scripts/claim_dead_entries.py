"""How the claim's cost grows with the dead index entries that claimed and finished tasks
leave at the head of the claim index until a vacuum removes them (PostgreSQL; see "Vacuum"
in docs/performance.md).

    .venv/bin/python -m scripts.claim_dead_entries [--tasks 60000] [--step 10000] [--batch 16]

Enqueues `tasks` no-op tasks into a fresh benchmark database with autovacuum off for
conveyor_task, then claims and finishes them through the engine, `batch` at a time on one
connection (no worker, so nothing else runs). Per `step` tasks it prints the median claim
time and the buffers the claim's index scan reads; then it vacuums the table and prints the
same for one more step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import measurements, processes
from benchmarks.databases import PostgreSQL
from benchmarks.systems import SYSTEMS

if TYPE_CHECKING:
    from conveyor.store import QueueFilter

INSIDE = "CLAIM_DEAD_ENTRIES_INSIDE"
WORKER_ID = "dead-entries"

# The claim's row selection as CLAIM_SQL has it (run after its PLANNER_SQL).
PICK_SQL = """
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
SELECT id FROM conveyor_task
WHERE status = 'READY' AND hold = 0 AND backend_name = %s
    AND available_after <= STATEMENT_TIMESTAMP() {queues}
ORDER BY priority DESC, available_after, attempt_count, enqueued_at, id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=60_000)
    parser.add_argument("--step", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=16)
    options = parser.parse_args()
    if os.environ.get(INSIDE) == "1":
        measure(options.tasks, options.step, options.batch)
        return
    system = SYSTEMS["conveyor"]
    logs = Path(processes.ROOT) / ".cache" / "claim-dead-entries"
    logs.mkdir(parents=True, exist_ok=True)
    harness = measurements.Harness(PostgreSQL(), logs)
    harness.prepare(system)
    target = harness.fresh(system)
    env = processes.environment(system, target, **{INSIDE: "1"})
    subprocess.run(
        [sys.executable, "-m", "scripts.claim_dead_entries", *sys.argv[1:]],
        env=env,
        cwd=processes.ROOT,
        check=True,
    )


def measure(tasks: int, step: int, batch: int) -> None:
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
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE conveyor_task SET (autovacuum_enabled = false)")
    for start in range(0, tasks + step, 10_000):
        conveyor.enqueue_many(noop, [((), {})] * min(10_000, tasks + step - start))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE conveyor_task")
    store.register_worker(worker_id=WORKER_ID, host="here", pid=os.getpid(), queues=queues)

    def drain(count: int) -> dict[str, Any]:
        buffers = pick_buffers(connection, store.backend_name, queues, batch)
        seconds = []
        for _ in range(count // batch):
            began = time.perf_counter()
            records = store.claim(worker_id=WORKER_ID, queues=queues, limit=batch)
            seconds.append(time.perf_counter() - began)
            outcomes = [Outcome(record, TaskResultStatus.SUCCESSFUL) for record in records]
            store.finish(worker_id=WORKER_ID, outcomes=outcomes)
        return {"claim_ms_median": round(1000 * statistics.median(seconds), 3),
                "pick_buffers_at_start": buffers}  # fmt: skip

    finished = 0
    while finished < tasks:
        print(json.dumps({"finished_before": finished, **drain(step)}), flush=True)
        finished += step
    with connection.cursor() as cursor:
        cursor.execute("VACUUM conveyor_task")
    print(json.dumps({"finished_before": finished, "after": "VACUUM", **drain(step)}))


def pick_buffers(connection: Any, backend_name: str, queues: QueueFilter, batch: int) -> int:
    """Shared buffers the claim's row selection reads now (its locks rolled back)."""
    from django.db import transaction

    from conveyor.store.postgresql import PLANNER_SQL

    queue_sql, queue_params = queues.as_sql(column="(queue_name || '')")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(PLANNER_SQL)
            cursor.execute(PICK_SQL.format(queues=queue_sql), [backend_name, *queue_params, batch])
            (plan,) = cursor.fetchone()[0]
        transaction.set_rollback(True)
    top = plan["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


if __name__ == "__main__":
    main()
