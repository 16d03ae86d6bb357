"""The values that cross the store's boundary: what goes in, and what comes back."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db.models import Q

from conveyor.columns import WAIT_BUCKETS_MS
from conveyor.compat import TaskError, TaskResultStatus
from conveyor.models import Attempt, TaskRecord
from conveyor.store.statements import placeholders


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which queues a worker serves: `include` (None: every queue) minus `exclude`."""

    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    def as_q(self) -> Q:
        condition = Q()
        if self.include is not None:
            condition &= Q(queue_name__in=sorted(self.include))
        if self.exclude:
            condition &= ~Q(queue_name__in=sorted(self.exclude))
        return condition

    def as_sql(self, column: str = "queue_name") -> tuple[str, list[str]]:
        """The filter as SQL conditions on `column`, for hand-written claims."""
        sql, params = "", []
        for names, operator in ((self.include, "IN"), (self.exclude or None, "NOT IN")):
            if names is not None:
                sql += f" AND {column} {operator} ({placeholders(names)})"
                params.extend(sorted(names))
        return sql, params

    def served(self) -> list[str]:
        """The queue names served, for the worker registry; empty means every queue."""
        return sorted((self.include or frozenset()) - self.exclude)

    def excluded(self) -> list[str]:
        """The queue names never served, for the worker registry."""
        return sorted(self.exclude)


@dataclass(slots=True)
class NewTask:
    """A task about to be inserted: what enqueue validated, and what the INSERT returned.

    Lighter than a TaskRecord (no model machinery), and shaped like one for results.
    """

    task_path: str
    backend_name: str
    queue_name: str
    priority: int
    takes_context: bool
    arguments: dict[str, Any]
    arguments_json: str
    run_after: datetime | None
    # The metadata given at enqueue as JSON text, or None (the column stays NULL).
    metadata_json: str | None = None
    # Flow control (conveyor.flow): set only for tasks that declare it.
    unique_key: str | None = None
    unique_keeps: int = 0
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    rate_key: str | None = None
    rate_limit: int | None = None
    rate_period_ms: int | None = None
    pk: int | None = None
    enqueued_at: datetime | None = None
    available_after: datetime | None = None
    # What a new row holds; results read these like a TaskRecord's.
    status: ClassVar[TaskResultStatus] = TaskResultStatus.READY
    started_at: ClassVar[datetime | None] = None
    finished_at: ClassVar[datetime | None] = None
    last_attempted_at: ClassVar[datetime | None] = None
    return_value: ClassVar[Any] = None

    def insert_values(self) -> tuple[str, str, str, int, bool, str, str | None, datetime | None]:
        """What an INSERT takes from it: path, backend, queue, priority, takes_context,
        the arguments and the metadata as JSON text, run_after."""
        return (
            self.task_path,
            self.backend_name,
            self.queue_name,
            self.priority,
            self.takes_context,
            self.arguments_json,
            self.metadata_json,
            self.run_after,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What a failed attempt leaves its task to: a retry after `retry_in`, or (None) the end.

    `error` replaces the attempt's error when the policy itself failed (it raised, or
    answered nonsense): the attempt then records why the task was not retried.
    """

    retry_in: timedelta | None
    error: TaskError | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one claimed attempt ended, as the runner (or recovery) reports it.

    `exception` is the exception itself when this process saw it; it is not stored, but lets
    task_finished receivers read it from sys.exc_info(), as Django's contract promises.
    `result` is the TaskResult the runner built before the attempt (the retry policy's
    `task_result`); without one, the store adds the task's earlier attempts as `history`
    for the policy. `decision` is the retry decision once the store has made it. `snooze`
    is set when the task raised conveyor.Snooze: it runs again after that delay, and the
    attempt is recorded as SNOOZED, not as a failure.
    """

    record: TaskRecord
    status: TaskResultStatus
    return_value: Any = None
    error: TaskError | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    result: Any = field(default=None, compare=False, repr=False)
    history: Sequence[Attempt] | None = field(default=None, compare=False, repr=False)
    decision: Decision | None = None
    snooze: timedelta | None = None

    @property
    def attempt_status(self) -> str:
        """The status of the Attempt row this outcome writes."""
        return SNOOZED if self.snooze is not None else str(self.status)


SNOOZED = "SNOOZED"


# Decides the fate of a FAILED outcome; the backend hands the store one that reads each
# task's own options (conveyor.policies), so that the store never imports tasks itself.
RetryDecider = Callable[[Outcome], Decision]


@dataclass(frozen=True, slots=True)
class Written:
    """An outcome that reached the database, and the state it left the task in."""

    outcome: Outcome
    status: TaskResultStatus
    finished_at: datetime | None
    available_after: datetime | None


@dataclass(frozen=True, slots=True)
class Applied:
    """What an operator action did: the ids it changed, and those it refused (wrong state or
    gone)."""

    changed: tuple[int, ...]
    refused: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class QueueCount:
    """Tasks of one queue in one status (and, for recent counts, the last minute's share)."""

    queue_name: str
    status: str
    count: int
    last_minute: int = 0


@dataclass(frozen=True, slots=True)
class LastTick:
    """The newest enqueued tick of a schedule, its task, and the task's status (None: the
    task is gone, deleted by retention or by hand)."""

    schedule_name: str
    tick: datetime
    task_id: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class DueCount:
    """Due READY tasks of one queue, and how long the oldest has waited."""

    queue_name: str
    count: int
    oldest_wait: timedelta


@dataclass(frozen=True, slots=True)
class QueueGauge:
    """What one queue holds now: due, deferred and running tasks, and the oldest due one's
    wait."""

    queue_name: str
    due: int
    deferred: int
    running: int
    oldest_due_wait: timedelta


@dataclass(frozen=True, slots=True)
class Gauges:
    """The state of a backend for a metrics scrape: its queues and its live workers."""

    queues: list[QueueGauge]
    workers_alive: int


@dataclass(frozen=True, slots=True)
class WaitCounts:
    """How long the tasks finished in one time bucket waited, from due to the start of their
    last attempt: how many waited at all, and how many at most each bound of
    conveyor.columns.WAIT_BUCKETS_MS (cumulative)."""

    start: datetime
    waited: int
    within: tuple[int, ...]

    def percentile(self, fraction: float) -> timedelta | None:
        """The nearest-rank percentile, as the bound of its bucket (the last bound when it
        lies beyond); None when no task waited."""
        if not self.waited:
            return None
        rank = max(math.ceil(round(fraction * self.waited, 9)), 1)  # 0.95 * 100 is 95.000...01
        for bound_ms, count in zip(WAIT_BUCKETS_MS, self.within, strict=True):
            if count >= rank:
                return timedelta(milliseconds=bound_ms)
        return timedelta(milliseconds=WAIT_BUCKETS_MS[-1])


@dataclass(frozen=True, slots=True)
class Activity:
    """What a backend's tasks did over a window, for the dashboard: finished tasks per time
    bucket and final status, their waits per bucket, and the tasks failing most."""

    now: datetime
    # (bucket start, status, count), buckets truncated to the minute or the hour.
    finished: list[tuple[datetime, str, int]]
    # One per bucket with a finished task, oldest first.
    waits: list[WaitCounts]
    # (task path, failed tasks), most first.
    failing: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class RateState:
    """One rate-limit key's latest window: its starts, and when the next window opens."""

    key: str
    limit: int
    period: timedelta
    window_start: datetime
    starts: int
    waiting: int

    @property
    def next_window(self) -> datetime:
        return self.window_start + self.period


@dataclass(frozen=True, slots=True)
class SlotState:
    """One concurrency key: its limit, how many tasks hold a slot and how many wait."""

    key: str
    limit: int
    holding: int
    running: int
    waiting: int
    # Ids of the RUNNING tasks holding a slot (the first few).
    holders: tuple[int, ...] = ()
