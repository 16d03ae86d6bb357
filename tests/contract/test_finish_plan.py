"""PostgreSQL's finish needs none of the claim's planner settings: with statistics missing,
stale or taken over a large finished history, it reads only the rows held RUNNING (through
an index, never a scan of the table), and plans the same with the settings as without."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection, transaction

from conveyor import enqueue_many
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store.postgresql import PLANNER_SQL
from tests.factories import claim_all, forget_task_statistics
from tests.tasksapp.tasks import noop

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'", reason="the statement and the planner of PostgreSQL"
    ),
]

# The task table read by primary key, or by an index whose condition is the RUNNING state.
BY_INDEX = re.compile(
    r"Index Scan using \w+ on conveyor_task task\s+\(.*\)\n\s+"
    r"Index Cond: \((?:\(status\)::text = 'RUNNING'::text|.*\bid = )"
)


def finish_plan(backend: DatabaseBackend, records: list[TaskRecord], *, settings: bool) -> str:
    succeeded = str(TaskResultStatus.SUCCESSFUL)
    rows = [
        [r.pk, r.attempt_count, "w", succeeded, succeeded, None, None, 0, None, None]
        for r in records
    ]
    sql = backend.store.finish_sql  # type: ignore[attr-defined]
    with transaction.atomic(), backend.store.bound_cursor() as cursor:  # type: ignore[attr-defined]
        if settings:
            for statement in PLANNER_SQL.split(";")[:-1]:
                cursor.execute(statement)
        cursor.execute(f"EXPLAIN {sql}", [json.dumps(rows)])
        return "\n".join(row[0] for row in cursor.fetchall())


def assert_reads_only_held_rows(backend: DatabaseBackend, records: list[TaskRecord]) -> None:
    plan = finish_plan(backend, records, settings=False)
    assert BY_INDEX.search(plan), plan
    for scan in ("Seq Scan on conveyor_task", "Bitmap Heap Scan on conveyor_task"):
        assert scan not in plan, plan
    assert plan == finish_plan(backend, records, settings=True)


def test_the_finish_reads_only_held_rows_on_a_table_never_analyzed(
    backend: DatabaseBackend,
) -> None:
    forget_task_statistics()
    enqueue_many(noop, [((), {})] * 3000)
    assert_reads_only_held_rows(backend, claim_all(backend.store, "w", limit=200))


def test_the_finish_reads_only_held_rows_with_statistics_of_a_small_table(
    backend: DatabaseBackend,
) -> None:
    enqueue_many(noop, [((), {})] * 5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE conveyor_task")
    enqueue_many(noop, [((), {})] * 3000)
    assert_reads_only_held_rows(backend, claim_all(backend.store, "w", limit=64))


def test_the_finish_reads_only_held_rows_beside_a_large_finished_history(
    backend: DatabaseBackend,
) -> None:
    enqueue_many(noop, [((), {})] * 20000)
    TaskRecord.objects.update(status=TaskResultStatus.SUCCESSFUL)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE conveyor_task")
    enqueue_many(noop, [((), {})] * 300)
    assert_reads_only_held_rows(backend, claim_all(backend.store, "w", limit=200))
