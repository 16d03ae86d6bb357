"""Periodic tasks in the store: each tick of a schedule enqueued exactly once, however many
workers race for it, by a marker row under a unique constraint written in the same
transaction as the task (see docs/internals.md)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import ClassVar

from django.db.models import OuterRef, QuerySet, Subquery

from conveyor.models import ScheduleTick, TaskRecord
from conveyor.store.flow import FlowControl
from conveyor.store.values import LastTick, NewTask

logger = logging.getLogger(__name__)

# Claim a tick: insert its marker unless another worker has (the unique constraint
# conveyor_tick_once); the row count says which. A racing insert waits for the first
# transaction and then does nothing. MariaDB/MySQL say it as INSERT IGNORE.
INSERT_TICK_SQL = (
    "INSERT INTO {tick} (backend_name, schedule_name, tick) VALUES (%s, %s, %s) "
    "ON CONFLICT (backend_name, schedule_name, tick) DO NOTHING"
)


class Schedules(FlowControl):
    insert_tick_sql: ClassVar[str] = INSERT_TICK_SQL

    def enqueue_tick(
        self, task: NewTask, *, schedule_name: str, tick: datetime, window: timedelta
    ) -> int | None:
        def write() -> int | None:
            with self.write_transaction():
                if tick < self.database_now() - window:
                    return None  # its marker may have been pruned: never enqueue it again
                if not self._mark_tick(schedule_name, tick):
                    return None
                pk = self._insert_scheduled(task, schedule_name=schedule_name, tick=tick)
                markers = self.tick_rows().filter(schedule_name=schedule_name)
                markers.filter(tick=tick).update(task_id=pk)
                markers.filter(tick__lt=tick - window).delete()
                return pk

        pk = self.retrying(write)
        if pk is not None:
            logger.info(
                "Task id=%s path=%s enqueued by schedule=%s tick=%s",
                pk,
                task.task_path,
                schedule_name,
                tick.isoformat(),
            )
        return pk

    def run_schedule(self, task: NewTask, *, schedule_name: str) -> int:
        def write() -> int:
            with self.write_transaction():
                pk = self._insert_scheduled(task, schedule_name=schedule_name, tick=None)
                if pk is None:  # a unique task whose previous run is live: that one
                    live = self.task_rows().filter(unique_key=task.unique_key)
                    return int(live.values_list("pk", flat=True).get())
                return pk

        return self.retrying(write)

    def last_ticks(self) -> list[LastTick]:
        markers = self.tick_rows()
        newest = markers.filter(schedule_name=OuterRef("schedule_name")).order_by("-tick")
        rows = list(
            markers.filter(tick=Subquery(newest.values("tick")[:1]))
            .order_by("schedule_name")
            .values_list("schedule_name", "tick", "task_id")
        )
        ids = [task_id for _, _, task_id in rows if task_id is not None]
        statuses = dict(self.task_rows().filter(pk__in=ids).values_list("pk", "status"))
        return [
            LastTick(name, tick, task_id, None if task_id is None else statuses.get(task_id))
            for name, tick, task_id in rows
        ]

    def tick_rows(self) -> QuerySet[ScheduleTick]:
        """This backend's tick markers."""
        return ScheduleTick.objects.using(self.using).filter(backend_name=self.backend_name)

    def _mark_tick(self, schedule_name: str, tick: datetime) -> bool:
        statement = self.insert_tick_sql.format(tick=self.table(ScheduleTick))
        stamp = self.connection.ops.adapt_datetimefield_value(tick)
        with self.connection.cursor() as cursor:
            cursor.execute(statement, [self.backend_name, schedule_name, stamp])
            inserted: int = cursor.rowcount
        return inserted == 1

    def _insert_scheduled(
        self, task: NewTask, *, schedule_name: str, tick: datetime | None
    ) -> int | None:
        """Insert the schedule's task; None when it is unique and its previous run is live."""
        if task.unique_key is not None or task.concurrency_key is not None:
            if (live := self._insert_controlled(task)) is not None:
                logger.info(
                    "Task path=%s of schedule=%s not enqueued: task id=%s holds its unique key",
                    task.task_path,
                    schedule_name,
                    live,
                )
                return None
            pk = task.pk
            assert pk is not None  # filled in by the insert
            self.task_rows().filter(pk=pk).update(schedule_name=schedule_name, schedule_tick=tick)
            return pk
        record = TaskRecord.objects.using(self.using).create(
            task_path=task.task_path,
            backend_name=self.backend_name,
            queue_name=task.queue_name,
            priority=task.priority,
            takes_context=task.takes_context,
            arguments=task.arguments,
            schedule_name=schedule_name,
            schedule_tick=tick,
        )
        return record.pk
