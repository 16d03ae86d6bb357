"""PostgreSQL: one-statement batch claims with SKIP LOCKED, one-statement fenced finishes,
array inserts, and LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.db import DatabaseError
from django.db.backends.utils import CursorWrapper

from conveyor.compat import TaskResultStatus
from conveyor.models import Attempt, Error, TaskRecord
from conveyor.store.engine import WakeupSource
from conveyor.store.listen import (
    CANCEL_CHANNEL,
    NOTIFY_CHANNEL,
    QUEUES_CHANNEL,
    PostgreSQLNotifications,
)
from conveyor.store.portable import PortableEngine
from conveyor.store.transitions import (
    FAILED,
    READY,
    SUCCESSFUL,
    log_lost_fence,
    stopped_by_cancel,
)
from conveyor.store.values import NewTask, Outcome, QueueFilter, Written

# A queue table's statistics go stale fast: after a bulk enqueue, before autovacuum analyzes,
# the planner believes few rows are READY and picks a bitmap scan and a sort of every READY
# row over the index walk that reads the first few: a claim then costs O(backlog). So
# conveyor's own hot statements run with these planner settings, sent in the same round trip:
# a multi-statement query is one implicit transaction, which SET LOCAL lasts for, and which
# ends with the statement. Anything else on the connection plans as configured.
PLANNER_SQL = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; "

# Claim: lock the most urgent due rows nobody else has locked, and mark them RUNNING, in one
# statement. SKIP LOCKED lets concurrent workers take disjoint batches without waiting. The
# rows are updated by primary key from an array of the picked ids: joined to the CTE, and
# re-checking their status, the update was free to find them through an index on status
# instead, reading every READY row when the statistics were stale (the lock has re-checked
# the picked rows already: they are READY and locked until the statement commits).
CLAIM_SQL = """
WITH picked AS (
    SELECT id FROM {table}
    WHERE status = 'READY' AND hold = 0 AND backend_name = %s
        AND available_after <= STATEMENT_TIMESTAMP() {queues}
    ORDER BY priority DESC, available_after, attempt_count, enqueued_at, id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
UPDATE {table} AS task
SET status = 'RUNNING', worker_id = %s, attempt_count = task.attempt_count + 1,
    started_at = COALESCE(task.started_at, STATEMENT_TIMESTAMP()),
    last_attempted_at = STATEMENT_TIMESTAMP()
WHERE task.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING {columns}
"""

# Finish: record a batch of ended attempts in one statement, for the worker that ran them or
# for recovery on behalf of a lost one. The UPDATE is the fence (only rows still held by the
# same worker for the same attempt change); attempts and errors are written for exactly the
# rows it changed. A retry's or a snooze's delay is added to the database clock; a task whose
# cancel was requested meanwhile does not come back: it ends FAILED with TaskCancelled.
# The outcomes come as one JSON array of rows, so the text is the same for every batch size:
# bound on the server, it is parsed by psycopg once per connection, not built per batch. One
# JSON document, encoded in C, costs the worker a fifth of what one array per column does
# (psycopg quotes each element of a text array in Python). A row's return value is its own
# JSON; None, as before, leaves the column NULL.
# It finds the held rows by primary key and needs no planner settings (see PLANNER_SQL).
FINISH_SQL = """
WITH outcome (id, attempt, holder, status, attempt_status, return_value, retry_in, snoozed,
              error_class, error_traceback) AS (
    SELECT (row->>0)::bigint, (row->>1)::integer, row->>2, row->>3, row->>4,
           NULLIF(row->5, 'null'::jsonb), (row->>6)::float8, (row->>7)::integer, row->>8,
           row->>9
    FROM jsonb_array_elements(%s::jsonb) AS rows (row)
),
held AS (
    UPDATE {task} AS task
    SET status = CASE WHEN outcome.status = 'READY' AND task.cancel_requested_by <> ''
            THEN 'FAILED' ELSE outcome.status END,
        finished_at = CASE WHEN outcome.status = 'READY' AND task.cancel_requested_by = ''
            THEN NULL ELSE STATEMENT_TIMESTAMP() END,
        return_value = outcome.return_value,
        available_after = CASE WHEN outcome.status = 'READY' AND task.cancel_requested_by = ''
            THEN STATEMENT_TIMESTAMP() + outcome.retry_in * INTERVAL '1 second'
            ELSE task.available_after END,
        hold = CASE WHEN outcome.status = 'READY' AND task.cancel_requested_by = ''
            AND outcome.retry_in > 0 THEN 1 ELSE 0 END,
        snoozes = task.snoozes + outcome.snoozed,
        unique_key = CASE
            WHEN outcome.status = 'READY' AND task.cancel_requested_by = '' THEN task.unique_key
            WHEN outcome.status = 'SUCCESSFUL' AND task.unique_keeps & 1 <> 0 THEN task.unique_key
            WHEN outcome.status <> 'SUCCESSFUL' AND task.unique_keeps & 2 <> 0
                THEN task.unique_key
            END,
        worker_id = ''
    FROM outcome
    WHERE task.id = outcome.id AND task.attempt_count = outcome.attempt
        AND task.status = 'RUNNING' AND task.worker_id = outcome.holder
    RETURNING task.id, task.last_attempted_at, task.available_after, task.status,
        task.cancel_requested_by,
        outcome.status = 'READY' AND task.cancel_requested_by <> '' AS stopped
),
attempt AS (
    INSERT INTO {attempt} (task_id, worker_id, started_at, stopped_at, status)
    SELECT held.id, outcome.holder, held.last_attempted_at, STATEMENT_TIMESTAMP(),
           CASE WHEN held.stopped THEN 'FAILED' ELSE outcome.attempt_status END
    FROM held JOIN outcome ON outcome.id = held.id
    RETURNING id, task_id
),
error AS (
    INSERT INTO {error} (attempt_id, exception_class_path, traceback)
    SELECT attempt.id,
        CASE WHEN held.stopped THEN 'conveyor.exceptions.TaskCancelled'
            ELSE outcome.error_class END,
        CASE WHEN held.stopped THEN
            COALESCE(RTRIM(outcome.error_traceback, E'\\n') || E'\\n\\n', '')
            || 'conveyor.exceptions.TaskCancelled: The task was cancelled (requested by '
            || held.cancel_requested_by || ' while the attempt ran)' || E'\\n'
            ELSE outcome.error_traceback END
    FROM attempt JOIN outcome ON outcome.id = attempt.task_id JOIN held ON held.id = attempt.task_id
    WHERE outcome.error_class IS NOT NULL OR held.stopped
)
SELECT held.id, held.available_after, STATEMENT_TIMESTAMP(), held.stopped,
    held.cancel_requested_by
FROM held
"""
# Insert a batch from one JSON array of rows: a short statement whatever the batch size, which
# PostgreSQL parses at once (a VALUES list of a thousand rows costs more to send and parse),
# and one document encoded in C (see FINISH_SQL). Arguments and metadata are JSON text.
INSERT_SQL = """
INSERT INTO {task} (task_path, backend_name, queue_name, priority, takes_context, arguments,
                    metadata, status, attempt_count, worker_id, run_after, available_after,
                    hold)
SELECT row->>0, row->>1, row->>2, (row->>3)::smallint, (row->>4)::boolean,
       (row->>5)::jsonb, (row->>6)::jsonb, 'READY', 0, '', (row->>7)::timestamptz,
       COALESCE((row->>7)::timestamptz, STATEMENT_TIMESTAMP()),
       CASE WHEN (row->>7)::timestamptz > STATEMENT_TIMESTAMP() THEN 1 ELSE 0 END
FROM jsonb_array_elements(%s::jsonb) AS rows (row)
RETURNING id, enqueued_at, available_after
"""

PLANNER_STATEMENTS = PLANNER_SQL.count(";")

# SQLSTATEs of lock conflicts: serialization_failure, deadlock_detected, lock_not_available.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class PostgreSQLEngine(PortableEngine):
    vendor = "postgresql"
    now_sql = "STATEMENT_TIMESTAMP()"
    json_placeholder = "%s::jsonb"

    def claim_rows(self, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        # One round trip: planner settings, staging, then the claim (see PLANNER_SQL).
        claim, claim_params = self.claim_statement(worker_id, queues, limit)
        sql = f"{PLANNER_SQL}{self.stage_statement()}; {claim}"
        params = [self.backend_name, *claim_params]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            skip_results(cursor, PLANNER_STATEMENTS + 1)
            return self.rows.records(cursor)

    def write_and_claim(
        self,
        outcomes: Sequence[Outcome],
        holders: Sequence[str],
        worker_id: str,
        queues: QueueFilter,
        limit: int,
    ) -> tuple[list[Written], list[TaskRecord]]:
        if not outcomes or limit < 1:
            return super().write_and_claim(outcomes, holders, worker_id, queues, limit)
        # One query string, so one round trip and one commit (see PLANNER_SQL): the finish,
        # then the staging and the claim, which see what the finish wrote.
        states = [self.decide(outcome) for outcome in outcomes]
        claim, params = self.claim_statement(worker_id, queues, limit)
        sql = f"{PLANNER_SQL}{self.finish_sql}; {self.stage_statement()}; {claim}"

        def write() -> tuple[list[Written], list[TaskRecord]]:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    sql, [outcome_json(outcomes, holders, states), self.backend_name, *params]
                )
                skip_results(cursor, PLANNER_STATEMENTS)
                held = {row[0]: row[1:] for row in cursor.fetchall()}
                skip_results(cursor, 2)  # to the claim, past the staging
                return written(outcomes, holders, states, held), self.rows.records(cursor)

        return self.retrying(write)

    def claim_statement(
        self, worker_id: str, queues: QueueFilter, limit: int
    ) -> tuple[str, list[Any]]:
        # An expression, not the column: the filter must not tempt the planner away from the
        # claim index towards conveyor_task_queue and a sort (see PLANNER_SQL).
        queue_sql, queue_params = queues.as_sql(column="(queue_name || '')")
        claim = CLAIM_SQL.format(
            table=self.table(TaskRecord), queues=queue_sql, columns=self.returned_columns
        )
        return claim, [self.backend_name, *queue_params, limit, worker_id]

    def insert_batch(self, tasks: Sequence[NewTask]) -> None:
        if len(tasks) == 1:
            super().insert_batch(tasks)  # one row: the plain VALUES statement plans faster
            return
        rows = []
        for task in tasks:
            *values, run_after = task.insert_values()
            rows.append([*values, None if run_after is None else run_after.isoformat()])
        with self.connection.cursor() as cursor:
            cursor.execute(INSERT_SQL.format(task=self.table(TaskRecord)), [json.dumps(rows)])
            self.fill_inserted(tasks, cursor.fetchall())

    def write_outcomes(self, outcomes: Sequence[Outcome], holders: Sequence[str]) -> list[Written]:
        states = [self.decide(outcome) for outcome in outcomes]
        with self.bound_cursor() as cursor:
            cursor.execute(self.finish_sql, [outcome_json(outcomes, holders, states)])
            held = {row[0]: row[1:] for row in cursor.fetchall()}
        return written(outcomes, holders, states, held)

    @cached_property
    def finish_sql(self) -> str:
        return FINISH_SQL.format(
            task=self.table(TaskRecord), attempt=self.table(Attempt), error=self.table(Error)
        )

    def bound_cursor(self) -> CursorWrapper:
        """A cursor that binds parameters on the server (Django's binds them in the query
        text), through Django's wrappers: a statement whose text does not change is then
        converted once, and its values travel apart from it."""
        import psycopg  # the postgresql extra's driver; not imported on other databases

        connection = self.connection
        connection.validate_thread_sharing()
        connection.ensure_connection()
        raw: Any = psycopg.Cursor(connection.connection)
        if connection.queries_logged:
            return connection.make_debug_cursor(raw)
        return connection.make_cursor(raw)

    def merged_metadata_sql(
        self, changed: dict[str, Any], removed: list[str]
    ) -> tuple[str, list[Any]]:
        # jsonb: drop the removed keys, then || replaces the changed ones whole.
        merged = "(COALESCE(metadata, '{}'::jsonb) - %s::text[]) || %s::jsonb"
        return merged, [removed, json.dumps(changed, allow_nan=False)]

    def wakeup_source(self) -> WakeupSource:
        return PostgreSQLNotifications(self.using, on_queues_changed=self.forget_paused)

    def cancel_source(self) -> WakeupSource:
        return PostgreSQLNotifications(self.using, CANCEL_CHANNEL)

    def notify_cancel(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {CANCEL_CHANNEL}")

    def wake_workers(self) -> None:
        # Inserts notify through the conveyor_task trigger; this is for other changes.
        with self.connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")

    def queues_changed(self) -> None:
        # Listening workers forget their paused set and claim again (see store/paused.py).
        super().queues_changed()
        with self.connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {QUEUES_CHANNEL}")

    def is_transient(self, exc: DatabaseError) -> bool:
        return getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES


def skip_results(cursor: CursorWrapper, statements: int) -> None:
    """Move past the results of the first statements of a query string to the one that
    returns rows."""
    for _ in range(statements):
        cursor.nextset()


State = tuple[TaskResultStatus, timedelta | None]


def outcome_json(
    outcomes: Sequence[Outcome], holders: Sequence[str], states: Sequence[State]
) -> str:
    """FINISH_SQL's parameter: one JSON row per outcome, with the state it leaves."""
    rows = []
    for outcome, holder, (status, delay) in zip(outcomes, holders, states, strict=True):
        error = outcome.error
        value = outcome.return_value if status == SUCCESSFUL else None
        rows.append(
            (
                outcome.record.pk,
                outcome.record.attempt_count,
                holder,
                str(status),
                str(outcome.attempt_status),
                value,
                None if delay is None else delay.total_seconds(),
                int(outcome.snooze is not None),
                error.exception_class_path if error else None,
                error.traceback if error else None,
            )
        )
    return json.dumps(rows)


def written(
    outcomes: Sequence[Outcome],
    holders: Sequence[str],
    states: Sequence[State],
    held: dict[int, Any],
) -> list[Written]:
    """What FINISH_SQL's reply (`held`: its rows by task id) says of each outcome."""
    found = []
    for outcome, holder, (status, _) in zip(outcomes, holders, states, strict=True):
        if outcome.record.pk not in held:
            log_lost_fence(outcome.record, holder)
            continue
        available_after, now, stopped, requested_by = held[outcome.record.pk]
        if stopped:
            found.append(Written(stopped_by_cancel(outcome, requested_by), FAILED, now, None))
        elif status == READY:
            found.append(Written(outcome, status, None, available_after))
        else:
            found.append(Written(outcome, status, now, None))
    return found
