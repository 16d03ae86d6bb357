"""PostgreSQL: one-statement batch claims with SKIP LOCKED, and LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

from django.db import DatabaseError

from conveyor.models import TaskRecord
from conveyor.store.base import QueueFilter, TaskStore

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

# SQLSTATEs of lock conflicts: serialization_failure, deadlock_detected, lock_not_available.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class PostgreSQLStore(TaskStore):
    vendor = "postgresql"

    def claim_rows(self, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        queue_sql, queue_params = queues.as_sql()
        sql = CLAIM_SQL.format(
            table=self.connection.ops.quote_name(TaskRecord._meta.db_table), queues=queue_sql
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [self.backend_name, *queue_params, limit, worker_id])
            return self.records_from_cursor(cursor)

    def wake_workers(self) -> None:
        # Inserts notify through the conveyor_task trigger; this is for other changes.
        with self.connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")

    def is_transient(self, exc: DatabaseError) -> bool:
        return getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES
