"""SQLite: claims in an immediate write transaction; "database is locked" is waited out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

from django.db import DatabaseError, OperationalError, transaction
from django.db.models import DurationField, Expression, F, Func

from conveyor.models import TaskRecord
from conveyor.store.portable import PortableEngine
from conveyor.store.rows import task_columns
from conveyor.store.values import QueueFilter

# The database clock in the text form Django stores datetimes in: SQLite's %f has
# milliseconds only, so pad to microseconds. Unpadded, "12:00:00.123" sorts before a
# run_after of "12:00:00.123456" and the task would start up to a millisecond early.
NOW = "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f000', 'NOW')"

# SQLite has one writer at a time, so the write transaction that claims is the lock: no other
# worker can read the same READY rows as claimable until it commits. The claim index is
# named: SQLite gathers no statistics until the application runs ANALYZE, and without them
# its planner takes the staging index (conveyor_task_waiting, also status and hold first)
# for the range on available_after and sorts every due row, on every claim.
CLAIM_SQL = f"""
UPDATE {{table}}
SET status = 'RUNNING', worker_id = %s, attempt_count = attempt_count + 1,
    started_at = COALESCE(started_at, {NOW}), last_attempted_at = {NOW}
WHERE id IN (
    SELECT id FROM {{table}} INDEXED BY conveyor_task_claim
    WHERE status = 'READY' AND hold = 0 AND backend_name = %s
        AND available_after <= {NOW} {{queues}}
    ORDER BY priority DESC, available_after, attempt_count, enqueued_at, id
    LIMIT %s
)
RETURNING {{columns}}
"""

LOCKED_MESSAGES = ("database is locked", "database table is locked", "database is busy")


class SQLiteEngine(PortableEngine):
    vendor = "sqlite"
    now_sql = NOW

    def wait_expression(self) -> Expression:
        """See Rollup.wait_expression(): in microseconds, as SQLite holds durations. Django's
        datetime subtraction calls Python for every row; julianday() is SQLite's own."""
        return Func(
            F("last_attempted_at"),
            F("available_after"),
            template="CAST(ROUND((julianday(%(expressions)s)) * 86400000000) AS INTEGER)",
            arg_joiner=") - julianday(",
            output_field=DurationField(),
        )

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """An IMMEDIATE transaction: take the write lock before reading, or wait for it.

        A DEFERRED transaction that reads and then writes fails at once with "database is
        locked" when another writer committed in between; IMMEDIATE waits for the lock instead.
        """
        connection = self.connection
        if connection.in_atomic_block:
            with transaction.atomic(using=self.using):
                yield
            return
        connection.ensure_connection()
        mode = connection.transaction_mode  # type: ignore[attr-defined]
        connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]
        try:
            atomic = transaction.atomic(using=self.using)
            atomic.__enter__()
        finally:
            connection.transaction_mode = mode  # type: ignore[attr-defined]
        try:
            yield
        except BaseException as exc:
            atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        atomic.__exit__(None, None, None)

    @cached_property
    def returned_columns(self) -> str:
        # SQLite's RETURNING names the updated table's columns unqualified.
        return task_columns(self.connection.ops.quote_name)

    def claim_rows(self, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        queue_sql, queue_params = queues.as_sql()
        sql = CLAIM_SQL.format(
            table=self.table(TaskRecord), queues=queue_sql, columns=self.returned_columns
        )
        with self.write_transaction(), self.connection.cursor() as cursor:
            cursor.execute(self.stage_statement(), [self.backend_name])
            cursor.execute(sql, [worker_id, self.backend_name, *queue_params, limit])
            return self.rows.records(cursor)

    def is_transient(self, exc: DatabaseError) -> bool:
        return isinstance(exc, OperationalError) and str(exc).lower().startswith(LOCKED_MESSAGES)
