"""MariaDB and MySQL: SELECT ... FOR UPDATE SKIP LOCKED, then an update by ids, in one
transaction (neither database returns rows from an UPDATE); the staging of due held rows
before it, in a statement of its own."""

from __future__ import annotations

from django.db import DatabaseError, OperationalError

from conveyor.models import TaskRecord
from conveyor.store.portable import PortableEngine
from conveyor.store.statements import placeholders
from conveyor.store.transitions import RUNNING
from conveyor.store.values import QueueFilter

NOW = "CURRENT_TIMESTAMP(6)"

# Pick and lock the most urgent due rows nobody else has locked; SKIP LOCKED lets concurrent
# workers take disjoint batches without waiting. The clock comes along for the update.
PICK_SQL = f"""
SELECT {{columns}}, {NOW} AS conveyor_now FROM {{table}} AS task
WHERE status = 'READY' AND hold = 0 AND backend_name = %s
    AND available_after <= {NOW} {{queues}}
ORDER BY priority DESC, available_after, attempt_count, enqueued_at, id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
TAKE_SQL = """
UPDATE {table}
SET status = 'RUNNING', worker_id = %s, attempt_count = attempt_count + 1,
    started_at = COALESCE(started_at, %s), last_attempted_at = %s
WHERE id IN ({ids})
"""

# Claim a tick (see conveyor.store.schedules): a duplicate marker is ignored, not an error.
INSERT_TICK_SQL = (
    "INSERT IGNORE INTO {tick} (backend_name, schedule_name, tick) VALUES (%s, %s, %s)"
)

# ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: the transaction was rolled back; run it again.
TRANSIENT_ERROR_CODES = frozenset({1213, 1205})


class MySQLEngine(PortableEngine):
    vendor = "mysql"
    now_sql = NOW
    insert_tick_sql = INSERT_TICK_SQL
    # A row whose unique key a live task holds is ignored, not an error.
    insert_ignore = ("INSERT IGNORE", "")
    # JSON_SET stores a plain string parameter as a JSON string; JSON_EXTRACT makes it JSON.
    json_value_sql = "JSON_EXTRACT(%s, '$')"

    def claim_rows(self, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        queue_sql, queue_params = queues.as_sql()
        table = self.table(TaskRecord)
        with self.connection.cursor() as cursor:
            # Staged in a statement of its own, before the claim's transaction: the staging
            # UPDATE's range scan leaves InnoDB's lock on the first index record past the
            # range (a RUNNING row, often) until its transaction ends, and recovery's SKIP
            # LOCKED passes a locked row by. A worker stopped inside its claim would hide a
            # lost task from recovery for as long as it stayed stopped.
            cursor.execute(self.stage_statement(), [self.backend_name])
        with self.write_transaction(), self.connection.cursor() as cursor:
            cursor.execute(
                PICK_SQL.format(table=table, queues=queue_sql, columns=self.returned_columns),
                [self.backend_name, *queue_params, limit],
            )
            picked, extra = self.rows.records_and_extra(cursor)
            if not picked:
                return []
            now = self.rows.datetime(extra[0][0])
            ids = [record.pk for record in picked]
            stamp = self.connection.ops.adapt_datetimefield_value(now)
            cursor.execute(
                TAKE_SQL.format(table=table, ids=placeholders(ids)),
                [worker_id, stamp, stamp, *ids],
            )
        for record in picked:
            record.status, record.worker_id = RUNNING, worker_id
            record.attempt_count += 1
            record.started_at = record.started_at or now
            record.last_attempted_at = now
        return picked

    def is_transient(self, exc: DatabaseError) -> bool:
        return (
            isinstance(exc, OperationalError)
            and bool(exc.args)
            and (exc.args[0] in TRANSIENT_ERROR_CODES)
        )
