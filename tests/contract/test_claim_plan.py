"""The claim reads due rows in index order: no sort, whatever the size of the history."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.tasks import TaskResultStatus

from conveyor import enqueue_many
from conveyor.backend import DatabaseBackend
from conveyor.models import TaskRecord
from conveyor.store import QueueFilter
from conveyor.store.mysql import PICK_SQL as MYSQL_PICK
from conveyor.store.postgresql import CLAIM_SQL as POSTGRESQL_CLAIM
from conveyor.store.sqlite import CLAIM_SQL as SQLITE_CLAIM
from tests.tasksapp.tasks import noop

# ANALYZE TABLE commits on MariaDB: the test cannot live in a rolled-back transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def claim_plan(backend: DatabaseBackend) -> str:
    table = connection.ops.quote_name(TaskRecord._meta.db_table)
    queue_sql, queue_params = QueueFilter().as_sql()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE conveyor_task")
            sql = POSTGRESQL_CLAIM.format(table=table, queues=queue_sql)
            cursor.execute(f"EXPLAIN {sql}", [backend.alias, *queue_params, 10, "w"])
        elif connection.vendor == "sqlite":
            cursor.execute("ANALYZE")
            sql = SQLITE_CLAIM.format(table=table, queues=queue_sql)
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", ["w", backend.alias, *queue_params, 10])
        else:
            cursor.execute("ANALYZE TABLE conveyor_task")
            sql = MYSQL_PICK.format(table=table, queues=queue_sql)
            with transaction.atomic():
                cursor.execute(f"EXPLAIN {sql}", [backend.alias, *queue_params, 10])
        return "\n".join(" ".join(str(part) for part in row) for row in cursor.fetchall())


def test_the_claim_sorts_nothing_even_with_a_large_finished_history(
    backend: DatabaseBackend,
) -> None:
    # Rows inserted together share every timestamp: only the id tells them apart.
    enqueue_many(noop, [((), {})] * 3000)
    history = list(TaskRecord.objects.order_by("pk").values_list("pk", flat=True)[:2000])
    TaskRecord.objects.filter(pk__in=history).update(status=TaskResultStatus.SUCCESSFUL)
    plan = claim_plan(backend)
    assert "conveyor_task_claim" in plan, plan
    for sign_of_sorting in ("Sort", "filesort", "TEMP B-TREE"):
        assert sign_of_sorting not in plan, plan
