"""The claim reads due rows in index order: no sort, whatever the size of the history, and
on PostgreSQL even with statistics gathered before a bulk enqueue (stale, as they are until
autovacuum analyzes the table again)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from conveyor import enqueue_many
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store import QueueFilter
from conveyor.store.mysql import PICK_SQL as MYSQL_PICK
from conveyor.store.postgresql import CLAIM_SQL as POSTGRESQL_CLAIM
from conveyor.store.postgresql import PLANNER_SQL, PLANNER_STATEMENTS, skip_results
from conveyor.store.sqlite import CLAIM_SQL as SQLITE_CLAIM
from tests.factories import forget_task_statistics, later
from tests.tasksapp.tasks import noop

# ANALYZE TABLE commits on MariaDB: the test cannot live in a rolled-back transaction.
pytestmark = pytest.mark.django_db(transaction=True)

QUEUES = QueueFilter(include=frozenset({"default", "low_priority", "other"}))


def analyze() -> None:
    statement = {"postgresql": "ANALYZE conveyor_task", "sqlite": "ANALYZE"}.get(
        connection.vendor, "ANALYZE TABLE conveyor_task"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement)


def claim_plan(backend: DatabaseBackend) -> str:
    table = connection.ops.quote_name(TaskRecord._meta.db_table)
    columns = backend.store.returned_columns  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # With the planner settings the claim is sent with.
            queue_sql, queue_params = QUEUES.as_sql(column="(queue_name || '')")
            sql = POSTGRESQL_CLAIM.format(table=table, queues=queue_sql, columns=columns)
            cursor.execute(f"{PLANNER_SQL}EXPLAIN {sql}", [backend.alias, *queue_params, 10, "w"])
            skip_results(cursor, PLANNER_STATEMENTS)
        elif connection.vendor == "sqlite":
            queue_sql, queue_params = QUEUES.as_sql()
            sql = SQLITE_CLAIM.format(table=table, queues=queue_sql, columns=columns)
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", ["w", backend.alias, *queue_params, 10])
        else:
            queue_sql, queue_params = QUEUES.as_sql()
            sql = MYSQL_PICK.format(table=table, queues=queue_sql, columns=columns)
            with transaction.atomic():
                cursor.execute(f"EXPLAIN {sql}", [backend.alias, *queue_params, 10])
        return "\n".join(" ".join(str(part) for part in row) for row in cursor.fetchall())


def finish_all_but(count: int) -> None:
    done = list(TaskRecord.objects.order_by("pk").values_list("pk", flat=True))[:-count]
    TaskRecord.objects.filter(pk__in=done).update(status=TaskResultStatus.SUCCESSFUL)


@pytest.mark.skipif(
    "connection.vendor == 'mysql'", reason="InnoDB gathers statistics itself as rows change"
)
def test_the_claim_walks_the_index_on_a_table_never_analyzed(backend: DatabaseBackend) -> None:
    # Rows held for their time too: their index (conveyor_task_waiting) also starts with
    # status and hold, and without statistics looks as good to SQLite's planner.
    enqueue_many(noop.using(run_after=later(hours=1)), [((), {})] * 100)
    enqueue_many(noop, [((), {})] * 3000)
    forget_task_statistics()
    plan = claim_plan(backend)
    assert "conveyor_task_claim" in plan, plan
    for sign_of_sorting in ("Sort", "TEMP B-TREE"):
        assert sign_of_sorting not in plan, plan
    if connection.vendor == "postgresql":
        # The picked rows are updated by primary key, not found again among all READY rows.
        assert "Index Scan using conveyor_task_pkey on conveyor_task task" in plan, plan
        assert "Index Cond: (id = ANY" in plan, plan


def test_the_claim_sorts_nothing_even_with_a_large_finished_history(
    backend: DatabaseBackend,
) -> None:
    # Statistics taken when READY rows were rare...
    enqueue_many(noop, [((), {})] * 2000)
    finish_all_but(5)
    analyze()
    # ...then a backlog arrives. Rows inserted together share every timestamp: only the id
    # tells them apart.
    enqueue_many(noop, [((), {})] * 3000)
    if connection.vendor != "postgresql":
        analyze()
    plan = claim_plan(backend)
    assert "conveyor_task_claim" in plan, plan
    for sign_of_sorting in ("Sort", "filesort", "TEMP B-TREE"):
        assert sign_of_sorting not in plan, plan


def test_the_claim_reads_only_due_rows_however_many_wait(backend: DatabaseBackend) -> None:
    # Deferred tasks of every priority, many more than the due ones, as a backlog of retries
    # and run_after tasks makes them.
    for priority in range(-100, 101, 25):
        enqueue_many(noop.using(priority=priority, run_after=later(hours=1)), [((), {})] * 300)
    enqueue_many(noop, [((), {})] * 5)
    analyze()
    plan = claim_plan(backend)
    for sign_of_sorting in ("Sort", "filesort", "TEMP B-TREE"):
        assert sign_of_sorting not in plan, plan
    # The index range is the due rows: status and hold are both equalities of its prefix.
    expected = {
        "postgresql": "conveyor_task_claim on conveyor_task",
        "sqlite": "USING INDEX conveyor_task_claim (status=? AND hold=?)",
        # key_len 44: status (VARCHAR(10) in utf8mb4, 42 bytes) and hold (2)
        "mysql": " conveyor_task_claim 44 ",
    }[connection.vendor]
    assert expected in plan, plan
    if connection.vendor == "postgresql":
        assert "Index Cond: (((status)::text = 'READY'::text) AND (hold = 0)" in plan, plan


PARTIAL = {
    "conveyor_task_claim": ["status = 'READY'"],
    "conveyor_task_waiting": ["status = 'READY'", "hold = 1"],
    "conveyor_task_running": ["status = 'RUNNING'"],
    "conveyor_task_slots": ["concurrency_key IS NOT NULL"],
}


def index_condition(name: str) -> str:
    """The index's WHERE clause as the database keeps it, without quotes, casts or brackets."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        else:
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = %s", [name])
        (row,) = cursor.fetchall()
    _, _, condition = str(row[0]).partition(" WHERE ")
    for noise in ('"', "::text", "(", ")"):
        condition = condition.replace(noise, "")
    return " ".join(condition.split())


@pytest.mark.parametrize("name", sorted(PARTIAL))
def test_the_claim_indexes_hold_only_the_rows_they_serve(name: str) -> None:
    # Where the database has partial indexes, a task's status change (or a task without a
    # concurrency key) adds no entry to them; MariaDB has none and indexes every row.
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "conveyor_task")
    assert constraints[name]["index"], constraints[name]
    if connection.vendor == "mysql":
        assert not connection.features.supports_partial_indexes
        return
    assert sorted(index_condition(name).split(" AND ")) == sorted(PARTIAL[name])
