"""Reads: results and their attempts, and the counts that status reports are made of."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import Now

from conveyor.models import Attempt, TaskRecord, WorkerRecord
from conveyor.store.core import EngineCore
from conveyor.store.values import DueCount, Gauges, QueueCount, QueueGauge

RESULTS_CHUNK_SIZE = 500
RECENT_MINUTE = timedelta(minutes=1)


class Reads(EngineCore):
    def task(self, pk: int) -> tuple[TaskRecord, list[Attempt]]:
        record = self.task_rows().get(pk=pk)
        return record, list(record.attempts.select_related("error").order_by("id"))

    def tasks_of(self, task_path: str) -> Iterator[tuple[TaskRecord, list[Attempt]]]:
        records = (
            self.task_rows()
            .filter(task_path=task_path)
            .order_by("-enqueued_at", "-id")
            .prefetch_related("attempts__error")
        )
        for record in records.iterator(chunk_size=RESULTS_CHUNK_SIZE):
            yield record, list(record.attempts.all())

    def histories(self, ids: Iterable[int]) -> dict[int, list[Attempt]]:
        wanted = list(ids)
        found: dict[int, list[Attempt]] = defaultdict(list)
        if not wanted:
            return found
        attempts = (
            Attempt.objects.using(self.using)
            .filter(task_id__in=wanted)
            .select_related("error")
            .order_by("id")
        )
        for attempt in attempts:
            found[attempt.task_id].append(attempt)
        return found

    def due_counts(self) -> list[DueCount]:
        now = self.database_now()
        rows = (
            self.task_rows()
            .ready()
            .filter(available_after__lte=now)
            .values("queue_name")
            .annotate(n=Count("pk"), oldest=Min("available_after"))
            .order_by()
        )
        return [
            DueCount(row["queue_name"], row["n"], max(now - row["oldest"], timedelta(0)))
            for row in rows
        ]

    def status_counts(self) -> list[QueueCount]:
        rows = self.task_rows().values("queue_name", "status").annotate(n=Count("pk")).order_by()
        return [QueueCount(row["queue_name"], row["status"], row["n"]) for row in rows]

    def finished_counts(self, *, since: timedelta) -> list[QueueCount]:
        now = self.database_now()
        minute = Q(finished_at__gte=now - RECENT_MINUTE)
        rows = (
            self.task_rows()
            .finished()
            .filter(finished_at__gte=now - since)
            .values("queue_name", "status")
            .annotate(n=Count("pk"), minute=Count("pk", filter=minute))
            .order_by()
        )
        return [
            QueueCount(row["queue_name"], row["status"], row["n"], row["minute"]) for row in rows
        ]

    def gauges(self) -> Gauges:
        now = self.database_now()
        due = Q(available_after__lte=now)
        # One query per status: each reads only its own partial index (conveyor_task_claim,
        # conveyor_task_running), where one over both statuses would read the whole table.
        ready = (
            self.task_rows()
            .ready()
            .values("queue_name")
            .annotate(
                due=Count("pk", filter=due),
                deferred=Count("pk", filter=~due),
                oldest=Min("available_after", filter=due),
            )
            .order_by()
        )
        running = dict(
            self.task_rows()
            .running()
            .values("queue_name")
            .annotate(n=Count("pk"))
            .order_by()
            .values_list("queue_name", "n")
        )
        queues = [
            QueueGauge(
                row["queue_name"],
                row["due"],
                row["deferred"],
                running.pop(row["queue_name"], 0),
                timedelta(0) if row["oldest"] is None else max(now - row["oldest"], timedelta(0)),
            )
            for row in ready
        ]
        queues += [QueueGauge(name, 0, 0, n, timedelta(0)) for name, n in running.items()]
        alive = WorkerRecord.objects.using(self.using).filter(
            backend_name=self.backend_name,
            last_heartbeat_at__gte=Now() - self.options.worker_timeout,
        )
        return Gauges(queues=queues, workers_alive=alive.count())
