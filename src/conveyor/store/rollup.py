"""The per-minute rollup of finished tasks (conveyor_minute), and the dashboard's reads.

One worker at a time (conveyor.worker.rollup) sums the finished task rows of whole minutes
into conveyor_minute, per queue, task path and final status, with their waits in fixed
buckets, and moves the backend's mark past them. The dashboard reads the minutes before the
mark from the rollup and only those after it from the task rows: what it reads grows with
the number of minutes and task paths, not with the number of tasks, and purged tasks stay
counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.db.models import (
    Case,
    Count,
    DurationField,
    Expression,
    ExpressionWrapper,
    F,
    IntegerField,
    Min,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Trunc

from conveyor.columns import WAIT_BUCKETS_MS, wait_column
from conveyor.compat import TaskResultStatus
from conveyor.models import MinuteCount, RollupMark
from conveyor.store.core import EngineCore
from conveyor.store.values import Activity, WaitCounts

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
WAIT_COLUMNS = tuple(wait_column(bound) for bound in WAIT_BUCKETS_MS)
# What a rollup row counts, summed over rows (sums are prefixed: MinuteCount has the names).
COUNTED = ("count", "waited", *WAIT_COLUMNS)
ROLLUP_INSERT_BATCH = 500


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def wait_bucket() -> Case:
    """The index in WAIT_BUCKETS_MS of the first bound a task's wait is within (past the
    last: its length; -1: never ran), for task rows that have a `wait` alias. One CASE per
    row, evaluated up to the first bound that holds, rather than one count per bound."""
    within = [
        When(wait__lte=timedelta(milliseconds=bound), then=Value(index))
        for index, bound in enumerate(WAIT_BUCKETS_MS)
    ]
    return Case(
        When(last_attempted_at__isnull=True, then=Value(-1)),
        *within,
        default=Value(len(WAIT_BUCKETS_MS)),
        output_field=IntegerField(),
    )


def cumulative(rows: Iterable[Mapping[str, Any]], by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows counted per bucket, `by`, status and wait bucket, as sums of COUNTED per bucket,
    `by` and status (the form of a rolled-up minute)."""
    summed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["bucket"], *(row[name] for name in by), row["status"])
        sums = summed.get(key)
        if sums is None:
            sums = summed[key] = {
                "bucket": row["bucket"],
                **{name: row[name] for name in by},
                "status": row["status"],
                **{f"sum_{name}": 0 for name in COUNTED},
            }
        n, index = row["n"], row["wait_bucket"]
        sums["sum_count"] += n
        if index >= 0:
            sums["sum_waited"] += n
            for column in WAIT_COLUMNS[index:]:
                sums[f"sum_{column}"] += n
    return list(summed.values())


class Rollup(EngineCore):
    def roll_up(self, *, lag: timedelta, keep: timedelta, limit: int) -> int:
        now = self.database_now()
        oldest = floor_minute(now - keep)
        mark = self.rollup_mark(default=oldest)
        start = max(mark, oldest)
        last = floor_minute(now - lag)
        if last <= start:
            return 0
        # Minutes in which nothing finished are passed in the same step: a new or quiet
        # backend would otherwise step through all it keeps, a batch at a time.
        first = self.first_finished(start, last)
        busy_from = last if first is None else max(start, floor_minute(first))
        end = min(last, busy_from + MINUTE * limit)
        # Read before the write transaction: SQLite's would hold every writer up meanwhile.
        rows = [
            MinuteCount(
                backend_name=self.backend_name,
                minute=row["bucket"],
                hour=row["bucket"].replace(minute=0),
                queue_name=row["queue_name"],
                task_path=row["task_path"],
                status=row["status"],
                **{name: row[f"sum_{name}"] for name in COUNTED},
            )
            for row in self.finished_rows(start, end, "minute", ("queue_name", "task_path"))
        ]
        write = partial(self.write_minutes, mark, start=start, end=end, oldest=oldest, rows=rows)
        return (end - start) // MINUTE if self.retrying(write) else 0

    def first_finished(self, start: datetime, end: datetime) -> datetime | None:
        """When the first task that finished in [start, end) finished (on the finished_at
        index), or None."""
        rows = self.task_rows().finished().filter(finished_at__gte=start, finished_at__lt=end)
        first: datetime | None = rows.aggregate(first=Min("finished_at"))["first"]
        return first

    def rollup_mark(self, *, default: datetime) -> datetime:
        """This backend's mark, created at `default` if it has none yet."""
        marks = RollupMark.objects.using(self.using).filter(backend_name=self.backend_name)
        mark = marks.values_list("rolled_until", flat=True).first()
        if mark is not None:
            return mark
        # A racing creator is ignored: both then move the same mark by compare-and-set.
        first = RollupMark(backend_name=self.backend_name, rolled_until=default)
        self.retrying(lambda: marks.bulk_create([first], ignore_conflicts=True))
        mark = marks.values_list("rolled_until", flat=True).first()
        assert mark is not None
        return mark

    def write_minutes(
        self,
        mark: datetime,
        *,
        start: datetime,
        end: datetime,
        oldest: datetime,
        rows: list[MinuteCount],
    ) -> bool:
        """Replace the minutes [start, end) with `rows` and move the mark from `mark` to
        `end`, in one transaction; False (nothing written) if the mark has moved meanwhile."""
        minutes = MinuteCount.objects.using(self.using).filter(backend_name=self.backend_name)
        marks = RollupMark.objects.using(self.using).filter(backend_name=self.backend_name)
        with self.write_transaction():
            if marks.filter(rolled_until=mark).update(rolled_until=end) != 1:
                return False  # another worker rolled these minutes up
            # Replaced, never added to: a minute rolled up again is not counted twice.
            minutes.filter(span_minutes=1, minute__gte=start, minute__lt=end).delete()
            minutes.filter(minute__lt=oldest).delete()
            MinuteCount.objects.using(self.using).bulk_create(rows, batch_size=ROLLUP_INSERT_BATCH)
            self.write_hours(start, end)
        return True

    def write_hours(self, start: datetime, end: datetime) -> None:
        """Replace the hour rows of the hours that end in (start, end] with the sums of their
        minutes' rows."""
        hours = []
        hour = start.replace(minute=0)
        while hour + HOUR <= end:
            if hour + HOUR > start:
                hours.append(hour)
            hour += HOUR
        if not hours:
            return
        minutes = MinuteCount.objects.using(self.using).filter(backend_name=self.backend_name)
        sums: Iterable[Mapping[str, Any]] = (
            minutes.filter(span_minutes=1, hour__in=hours)
            .values("hour", "queue_name", "task_path", "status")
            .annotate(**{f"sum_{name}": Sum(name) for name in COUNTED})
            .order_by()
        )
        rows = [
            MinuteCount(
                backend_name=self.backend_name,
                span_minutes=60,
                minute=row["hour"],
                hour=row["hour"],
                queue_name=row["queue_name"],
                task_path=row["task_path"],
                status=row["status"],
                **{name: int(row[f"sum_{name}"]) for name in COUNTED},
            )
            for row in sums
        ]
        minutes.filter(span_minutes=60, minute__in=hours).delete()
        MinuteCount.objects.using(self.using).bulk_create(rows, batch_size=ROLLUP_INSERT_BATCH)

    def finished_rows(
        self, start: datetime, end: datetime, bucket: str, by: tuple[str, ...]
    ) -> Iterable[Mapping[str, Any]]:
        """The task rows finished in [start, end), counted per `bucket`, the `by` columns and
        status (on the finished_at index); `by` may name `failed_path`, the task path of
        failed tasks (NULL for the others)."""
        rows = self.task_rows().finished().filter(finished_at__gte=start, finished_at__lt=end)
        counted = (
            # In UTC: MariaDB/MySQL converts other zones only with its time zone tables loaded.
            rows.alias(wait=self.wait_expression())
            .annotate(
                bucket=Trunc("finished_at", bucket, tzinfo=UTC),
                wait_bucket=wait_bucket(),
                failed_path=Case(When(status=TaskResultStatus.FAILED, then=F("task_path"))),
            )
            .values("bucket", *by, "status", "wait_bucket")
            .annotate(n=Count("pk"))
            .order_by()
        )
        return cumulative(counted, by)

    def wait_expression(self) -> Expression:
        """A task's wait, from due to the start of its last attempt, as a duration."""
        return ExpressionWrapper(
            F("last_attempted_at") - F("available_after"), output_field=DurationField()
        )

    def rolled_rows(
        self, start: datetime, end: datetime, bucket: str
    ) -> Iterable[Mapping[str, Any]]:
        """The rolled-up minutes in [start, end), summed per `bucket`, task path and status;
        per hour, whole hours from their hour rows."""
        within = Q(span_minutes=1, minute__gte=start, minute__lt=end)
        if bucket == "hour":
            boundary = max(end.replace(minute=0), start)
            within = Q(
                span_minutes=60, minute__gte=start.replace(minute=0), minute__lt=boundary
            ) | Q(span_minutes=1, minute__gte=boundary, minute__lt=end)
        summed: Iterable[Mapping[str, Any]] = (
            MinuteCount.objects.using(self.using)
            .filter(within, backend_name=self.backend_name)
            .annotate(bucket=F(bucket))
            .values("bucket", "task_path", "status")
            .annotate(**{f"sum_{name}": Sum(name) for name in COUNTED})
            .order_by()
        )
        return summed

    def activity(self, *, since: timedelta, bucket: str, top: int) -> Activity:
        if bucket not in ("minute", "hour"):
            raise ValueError(f"bucket must be 'minute' or 'hour', got {bucket!r}")
        now = self.database_now()
        start = floor_minute(now - since)
        marks = RollupMark.objects.using(self.using).filter(backend_name=self.backend_name)
        mark = marks.values_list("rolled_until", flat=True).first() or start
        since_mark = max(mark, start)
        rows = [
            *self.rolled_rows(start, since_mark, bucket),
            # Not by task path: sorting every row of a window by text costs more than the
            # count (and on SQLite, grouping by a plain column scans its index instead of the
            # window's rows); the failed ones by path only.
            # Bounded above too: SQLite reads a one-sided range by another index.
            *self.finished_rows(since_mark, now + MINUTE, bucket, ("failed_path",)),
        ]
        return summarise(now, rows, top=top)


def summarise(now: datetime, rows: Iterable[Mapping[str, Any]], *, top: int) -> Activity:
    """Rows of COUNTED sums per bucket, status and task path (`task_path`, or `failed_path`
    for failed tasks only), as the dashboard's Activity."""
    finished: dict[tuple[datetime, str], int] = defaultdict(int)
    waited: dict[datetime, list[int]] = defaultdict(lambda: [0] * (1 + len(WAIT_COLUMNS)))
    failing: dict[str, int] = defaultdict(int)
    for row in rows:
        start, status = row["bucket"], row["status"]
        if start is None:
            continue
        finished[start, status] += int(row["sum_count"])
        sums = waited[start]
        for i, name in enumerate(COUNTED[1:]):
            sums[i] += int(row[f"sum_{name}"] or 0)
        if status == TaskResultStatus.FAILED:
            failing[row.get("task_path") or row["failed_path"]] += int(row["sum_count"])
    return Activity(
        now=now,
        finished=[(start, status, n) for (start, status), n in sorted(finished.items())],
        waits=[
            WaitCounts(start, sums[0], tuple(sums[1:])) for start, sums in sorted(waited.items())
        ],
        failing=sorted(failing.items(), key=lambda item: (-item[1], item[0]))[:top],
    )
