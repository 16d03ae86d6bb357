"""Recovery: the running attempts of workers that died are failed with WorkerLost, through
the same fenced write as any other outcome, so each is closed exactly once."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models.functions import Now

from conveyor.exceptions import WorkerLost
from conveyor.failures import error_from_message
from conveyor.models import TaskRecord, WorkerRecord
from conveyor.store.flow import FlowControl, freed_keys
from conveyor.store.transitions import FAILED
from conveyor.store.values import Outcome, Written

logger = logging.getLogger(__name__)


class Recovery(FlowControl):
    def recover_lost(self, *, recovered_by: str, only: str | None = None) -> list[Written]:
        written = self.retrying(lambda: self._recover_lost(recovered_by, only))
        self.promote(freed_keys(written))
        return written

    def _recover_lost(self, recovered_by: str, only: str | None) -> list[Written]:
        cutoff = Now() - self.options.worker_timeout
        workers = WorkerRecord.objects.using(self.using)
        with self.write_transaction():
            alive = set(
                workers.filter(last_heartbeat_at__gte=cutoff).values_list("worker_id", flat=True)
            )
            # A worker never takes its own tasks back, however old its heartbeat looks (its
            # heartbeat thread may have been starved); only a new owner of its id does.
            alive.add(recovered_by)
            if only is not None:
                alive.discard(only)
            seen = dict(workers.values_list("worker_id", "last_heartbeat_at"))
            lost = self.task_rows().running().exclude(worker_id__in=alive)
            if only is not None:
                lost = lost.filter(worker_id=only)
            rows = list(lost.order_by("pk").select_for_update(skip_locked=True))
            outcomes = [
                self.decided(lost_outcome(row, seen.get(row.worker_id), recovered_by))
                for row in rows
            ]
            written = self.write_outcomes(outcomes, [r.worker_id for r in rows]) if rows else []
            for item in written:
                record = item.outcome.record
                logger.warning(
                    "Recovered task id=%s path=%s from lost worker=%s",
                    record.pk,
                    record.task_path,
                    record.worker_id,
                )
            dead = workers.filter(backend_name=self.backend_name, last_heartbeat_at__lt=cutoff)
            dead.exclude(worker_id=recovered_by).delete()
        return written


def lost_outcome(record: TaskRecord, last_seen: datetime | None, recovered_by: str) -> Outcome:
    """The failed outcome recovery records for a task whose worker was lost."""
    if last_seen is None:
        why = f"Worker {record.worker_id!r} is not registered (it exited or was removed)"
    else:
        why = (
            f"Worker {record.worker_id!r} stopped sending heartbeats; "
            f"last heartbeat at {last_seen.isoformat()}"
        )
    message = f"{why}; task taken back by worker {recovered_by!r}"
    return Outcome(
        record,
        FAILED,
        error=error_from_message(WorkerLost, message),
        exception=WorkerLost(message),
    )
