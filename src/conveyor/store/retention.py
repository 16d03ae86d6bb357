"""Retention: deleting old results, and READY tasks that nobody ran, in small batches."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.db.models.functions import Now

from conveyor.models import TaskRecordQuerySet
from conveyor.store.core import EngineCore

PURGE_BATCH_SIZE = 500


class Retention(EngineCore):
    def purgeable(self, *, finished: bool, older_than: timedelta) -> TaskRecordQuerySet:
        """Results finished longer than `older_than` ago; or READY tasks enqueued that long
        ago that were due that long ago too (a task deferred into the future is not stale)."""
        cutoff = Now() - older_than
        if finished:
            return self.task_rows().finished().filter(finished_at__lt=cutoff)
        return self.task_rows().ready().filter(enqueued_at__lt=cutoff, available_after__lt=cutoff)

    def count_purgeable(self, *, finished: bool, older_than: timedelta) -> int:
        return self.purgeable(finished=finished, older_than=older_than).count()

    def purge(
        self,
        *,
        finished: bool,
        older_than: timedelta,
        limit: int | None = None,
        batch_size: int = PURGE_BATCH_SIZE,
    ) -> int:
        rows = self.purgeable(finished=finished, older_than=older_than)
        deleted = 0
        while limit is None or deleted < limit:
            size = batch_size if limit is None else min(batch_size, limit - deleted)
            ids = list(rows.order_by("pk").values_list("pk", flat=True)[:size])
            if not ids:
                break
            # The purge condition is checked again: a row claimed or retried meanwhile stays.
            count = self.retrying(partial(delete_rows, rows.filter(pk__in=ids)))
            deleted += count
            if count < len(ids):
                break
        return deleted


def delete_rows(rows: TaskRecordQuerySet) -> int:
    # Tasks only: before Django 6.1 the total counts the attempts and errors Django deleted too.
    count: int = rows.delete()[1].get(rows.model._meta.label, 0)
    return count
