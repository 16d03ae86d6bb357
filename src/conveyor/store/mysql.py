"""MariaDB and MySQL: SELECT ... FOR UPDATE SKIP LOCKED, then an update by ids, in one
transaction (neither database returns rows from an UPDATE)."""

from __future__ import annotations

from django.db import DatabaseError, OperationalError
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Now

from conveyor.models import TaskRecord
from conveyor.store.base import RUNNING, QueueFilter, TaskStore

# ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: the transaction was rolled back; run it again.
TRANSIENT_ERROR_CODES = frozenset({1213, 1205})


class MySQLStore(TaskStore):
    vendor = "mysql"

    def claim_rows(self, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        with self.write_transaction():
            picked = list(
                self.tasks.due()
                .filter(queues.as_q())
                .in_claim_order()
                .select_for_update(skip_locked=True)
                .annotate(now=Now())[:limit]
            )
            if not picked:
                return []
            now = picked[0].now
            TaskRecord.objects.using(self.using).filter(pk__in=[r.pk for r in picked]).update(
                status=RUNNING,
                worker_id=worker_id,
                attempt_count=F("attempt_count") + 1,
                started_at=Coalesce(F("started_at"), Value(now)),
                last_attempted_at=Value(now),
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
