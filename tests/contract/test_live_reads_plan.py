"""The reads that workers and the dashboard repeat all day (recovery, cancel requests, the
next due time, the queue gauges) find the live tasks through their partial indexes and never
read the finished history, with the statistics of a fresh table or of a large history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conveyor import enqueue_many
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store import Engine
from tests.factories import ALL_QUEUES, claim_all, forget_task_statistics
from tests.tasksapp.tasks import noop

# ANALYZE TABLE commits on MariaDB: the test cannot live in a rolled-back transaction.
pytestmark = pytest.mark.django_db(transaction=True)

HISTORY = 20_000

READS: dict[str, Callable[[Engine], Any]] = {
    "recover_lost": lambda store: store.recover_lost(recovered_by="w"),
    "cancel_requests": lambda store: store.cancel_requests("w"),
    "next_available_at": lambda store: store.next_available_at(ALL_QUEUES),
    "gauges": lambda store: store.gauges(),
}


def plan(sql: str) -> str:
    with connection.cursor() as cursor:
        prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        cursor.execute(prefix + sql)
        return "\n".join(" ".join(str(part) for part in row) for row in cursor.fetchall())


def reads_the_whole_table(sql: str) -> bool:
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql)
            columns = [c[0] for c in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        return any(r["table"] == "conveyor_task" and r["type"] == "ALL" for r in rows)
    found = plan(sql)
    return "Seq Scan on conveyor_task" in found or "SCAN conveyor_task" in found.replace(
        "SCAN conveyor_task USING", ""
    )


@pytest.mark.parametrize("statistics", ["fresh", "analyzed"])
@pytest.mark.parametrize("read", sorted(READS))
def test_a_live_read_skips_the_finished_history(
    backend: DatabaseBackend, read: str, statistics: str
) -> None:
    if statistics == "fresh" and connection.vendor == "mysql":
        pytest.skip("InnoDB gathers statistics itself as rows change")
    enqueue_many(noop, [((), {})] * HISTORY)
    TaskRecord.objects.update(status=TaskResultStatus.SUCCESSFUL)
    enqueue_many(noop, [((), {})] * 50)
    claim_all(backend.store, "w", limit=10)
    if statistics == "fresh":
        forget_task_statistics()
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                {"postgresql": "ANALYZE conveyor_task", "sqlite": "ANALYZE"}.get(
                    connection.vendor, "ANALYZE TABLE conveyor_task"
                )
            )
    with CaptureQueriesContext(connection) as queries:
        READS[read](backend.store)
    selects = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and "conveyor_task" in q["sql"]
    ]
    assert selects, queries.captured_queries
    for sql in selects:
        assert not reads_the_whole_table(sql), (sql, plan(sql))
