"""PostgreSQL: one-statement batch claims with SKIP LOCKED, and LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError

from conveyor.models import Attempt, Error, TaskRecord
from conveyor.store.base import (
    READY,
    SUCCESSFUL,
    NewTask,
    Outcome,
    QueueFilter,
    TaskStore,
    Written,
    log_lost_fence,
)

# The channel the conveyor_task insert trigger notifies (see migration 0002).
NOTIFY_CHANNEL = "conveyor_tasks"

# Claim: lock the most urgent due rows nobody else has locked, and mark them RUNNING, in one
# statement. SKIP LOCKED lets concurrent workers take disjoint batches without waiting.
CLAIM_SQL = """
WITH picked AS (
    SELECT id FROM {table}
    WHERE status = 'READY' AND backend_name = %s AND available_after <= STATEMENT_TIMESTAMP()
        {queues}
    ORDER BY available_after, priority DESC, attempt_count, enqueued_at, id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
UPDATE {table} AS task
SET status = 'RUNNING', worker_id = %s, attempt_count = task.attempt_count + 1,
    started_at = COALESCE(task.started_at, STATEMENT_TIMESTAMP()),
    last_attempted_at = STATEMENT_TIMESTAMP()
FROM picked
WHERE task.id = picked.id AND task.status = 'READY'
RETURNING task.*
"""

# Finish: record a batch of ended attempts in one statement. The UPDATE is the fence (only
# rows this worker still holds for the same attempt change); attempts and errors are written
# for exactly the rows it changed. A retry's delay is added to the database clock.
FINISH_SQL = """
WITH outcome (id, attempt, status, attempt_status, return_value, retry_in, error_class,
              error_traceback) AS (
    VALUES {rows}
),
held AS (
    UPDATE {task} AS task
    SET status = outcome.status,
        finished_at = CASE WHEN outcome.status = 'READY' THEN NULL ELSE STATEMENT_TIMESTAMP() END,
        return_value = outcome.return_value,
        available_after = CASE WHEN outcome.status = 'READY'
            THEN STATEMENT_TIMESTAMP() + outcome.retry_in * INTERVAL '1 second'
            ELSE task.available_after END,
        worker_id = ''
    FROM outcome
    WHERE task.id = outcome.id AND task.attempt_count = outcome.attempt
        AND task.status = 'RUNNING' AND task.worker_id = %s
    RETURNING task.id, task.last_attempted_at, task.available_after
),
attempt AS (
    INSERT INTO {attempt} (task_id, worker_id, started_at, stopped_at, status)
    SELECT held.id, %s, held.last_attempted_at, STATEMENT_TIMESTAMP(), outcome.attempt_status
    FROM held JOIN outcome ON outcome.id = held.id
    RETURNING id, task_id
),
error AS (
    INSERT INTO {error} (attempt_id, exception_class_path, traceback)
    SELECT attempt.id, outcome.error_class, outcome.error_traceback
    FROM attempt JOIN outcome ON outcome.id = attempt.task_id
    WHERE outcome.error_class IS NOT NULL
)
SELECT held.id, held.available_after, STATEMENT_TIMESTAMP() FROM held
"""
FINISH_ROW = (
    "(%s::bigint, %s::integer, %s::varchar, %s::varchar, %s::jsonb, %s::float8, %s::varchar, "
    "%s::text)"
)

# Insert a batch from one array per column: a short statement whatever the batch size, which
# PostgreSQL parses at once (a VALUES list of a thousand rows costs more to send and parse).
INSERT_SQL = """
INSERT INTO {task} (task_path, backend_name, queue_name, priority, takes_context, arguments,
                    status, attempt_count, worker_id, run_after, available_after)
SELECT path, backend, queue, priority, takes_context, arguments, 'READY', 0, '', run_after,
       COALESCE(run_after, STATEMENT_TIMESTAMP())
FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::smallint[], %s::boolean[],
            %s::jsonb[], %s::timestamptz[])
    AS new (path, backend, queue, priority, takes_context, arguments, run_after)
RETURNING id, enqueued_at, available_after
"""

# A queue table's statistics go stale fast: after a bulk enqueue, before autovacuum analyzes,
# the planner believes few rows are READY and picks a bitmap scan and a sort of every READY
# row over the index walk that reads the first few: a claim then costs O(backlog). On the
# connection that runs conveyor's own statements (claim, finish), the index is always right.
WORKER_SESSION_SQL = ("SET enable_bitmapscan = off", "SET enable_seqscan = off")

# SQLSTATEs of lock conflicts: serialization_failure, deadlock_detected, lock_not_available.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class PostgreSQLStore(TaskStore):
    vendor = "postgresql"
    now_sql = "STATEMENT_TIMESTAMP()"
    json_placeholder = "%s::jsonb"

    def claim_rows(self, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        self.tune_session()
        # An expression, not the column: the filter must not tempt the planner away from the
        # claim index towards conveyor_task_queue and a sort (see WORKER_SESSION_SQL).
        queue_sql, queue_params = queues.as_sql(column="(queue_name || '')")
        sql = CLAIM_SQL.format(
            table=self.connection.ops.quote_name(TaskRecord._meta.db_table), queues=queue_sql
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [self.backend_name, *queue_params, limit, worker_id])
            return self.records_from_cursor(cursor)

    def _insert_batch(self, records: Sequence[NewTask]) -> None:
        if len(records) == 1:
            super()._insert_batch(records)  # one row: the plain VALUES statement plans faster
            return
        # One list per column (psycopg sends a list as an array; INSERT_SQL unnests them).
        rows = [record.insert_values() for record in records]
        columns = [list(column) for column in zip(*rows, strict=True)]
        with self.connection.cursor() as cursor:
            cursor.execute(INSERT_SQL.format(task=self.table(TaskRecord)), columns)
            returned = cursor.fetchall()
        self.fill_inserted(records, returned)

    def tune_session(self) -> None:
        """Apply WORKER_SESSION_SQL once per database session of this thread's connection."""
        connection = self.connection
        connection.ensure_connection()
        if getattr(connection, "conveyor_tuned", None) is connection.connection:
            return
        with connection.cursor() as cursor:
            for statement in WORKER_SESSION_SQL:
                cursor.execute(statement)
        connection.conveyor_tuned = connection.connection  # type: ignore[attr-defined]

    def _finish(self, worker_id: str, outcomes: Sequence[Outcome]) -> list[Written]:
        self.tune_session()
        params: list[Any] = []
        decided = []
        for outcome in outcomes:
            status, delay = self.decide(outcome)
            decided.append((outcome, status))
            error = outcome.error
            value = outcome.return_value if status == SUCCESSFUL else None
            params += [
                outcome.record.pk,
                outcome.record.attempt_count,
                status,
                outcome.status,
                None if value is None else json.dumps(value),
                None if delay is None else delay.total_seconds(),
                error.exception_class_path if error else None,
                error.traceback if error else None,
            ]
        quote = self.connection.ops.quote_name
        sql = FINISH_SQL.format(
            rows=", ".join([FINISH_ROW] * len(outcomes)),
            task=quote(TaskRecord._meta.db_table),
            attempt=quote(Attempt._meta.db_table),
            error=quote(Error._meta.db_table),
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [*params, worker_id, worker_id])
            held = {pk: (available_after, now) for pk, available_after, now in cursor.fetchall()}
        written = []
        for outcome, status in decided:
            if outcome.record.pk not in held:
                log_lost_fence(outcome.record, worker_id)
                continue
            available_after, now = held[outcome.record.pk]
            if status == READY:
                written.append(Written(outcome, status, None, available_after))
            else:
                written.append(Written(outcome, status, now, None))
        return written

    def wake_workers(self) -> None:
        # Inserts notify through the conveyor_task trigger; this is for other changes.
        with self.connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")

    def is_transient(self, exc: DatabaseError) -> bool:
        return getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES
