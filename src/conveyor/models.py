"""The tables of conveyor: task rows, their attempts and errors, and the worker registry."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from conveyor.columns import (
    BACKEND_NAME_MAX_LENGTH,
    HOLD_NONE,
    HOLD_TIME,
    QUEUE_NAME_MAX_LENGTH,
    SCHEDULE_NAME_MAX_LENGTH,
    WORKER_ID_MAX_LENGTH,
)
from conveyor.compat import DB_CASCADE, TaskResultStatus
from conveyor.indexes import PartialIndex


class TaskRecordQuerySet(models.QuerySet["TaskRecord"]):
    def ready(self) -> TaskRecordQuerySet:
        return self.filter(status=TaskResultStatus.READY)

    def running(self) -> TaskRecordQuerySet:
        return self.filter(status=TaskResultStatus.RUNNING)

    def finished(self) -> TaskRecordQuerySet:
        return self.filter(status__in=(TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED))


class TaskRecord(models.Model):
    """One enqueued task: what to run, where it stands, and what it returned."""

    id = models.BigAutoField(primary_key=True)
    task_path = models.CharField(max_length=255)
    backend_name = models.CharField(max_length=BACKEND_NAME_MAX_LENGTH)
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    priority = models.SmallIntegerField(default=0)
    takes_context = models.BooleanField(default=False)
    # {"args": [...], "kwargs": {...}}, as the task was enqueued.
    arguments = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=TaskResultStatus.choices, default=TaskResultStatus.READY
    )
    run_after = models.DateTimeField(null=True, blank=True)
    # When the task may run next: enqueue time, run_after, or the end of a retry's back-off.
    available_after = models.DateTimeField(db_default=Now())
    # Why a READY task is not claimable yet (conveyor.columns.HOLD_*): kept out of the
    # claim's index range until it is due or has a slot (see docs/internals.md, "The claim").
    hold = models.PositiveSmallIntegerField(default=HOLD_NONE, db_default=HOLD_NONE)
    # Denormalised count of claimed attempts; also fences writes of a stale attempt.
    attempt_count = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    return_value = models.JSONField(null=True, blank=True)
    # The worker holding the task while it is RUNNING; empty otherwise.
    worker_id = models.CharField(max_length=WORKER_ID_MAX_LENGTH, blank=True, default="")
    # The schedule that enqueued the task (NULL: none; nullable, so adding the column writes
    # no existing row), and the tick it was enqueued for (NULL: run now, outside the ticks).
    schedule_name = models.CharField(  # noqa: DJ001
        max_length=SCHEDULE_NAME_MAX_LENGTH, null=True, blank=True, default=None
    )
    schedule_tick = models.DateTimeField(null=True, blank=True, default=None)
    # Attempts that ended with a snooze (conveyor.Snooze): not failures, so the retry policy
    # counts attempt_count - snoozes against max_attempts.
    snoozes = models.PositiveIntegerField(db_default=0)
    # Who asked for the RUNNING task to stop (conveyor.cancel); empty: nobody. Its worker
    # reads it with its heartbeat, and a retry of the attempt becomes the end.
    cancel_requested_by = models.CharField(
        max_length=WORKER_ID_MAX_LENGTH, blank=True, db_default=""
    )
    # Flow control (conveyor.flow): the key of a unique task, cleared by the write that moves
    # it out of its unique states (the final states it keeps it in: unique_keeps, bits 1
    # SUCCESSFUL, 2 FAILED); the key and limit of a concurrency-limited task.
    unique_key = models.CharField(max_length=64, null=True, blank=True, default=None)  # noqa: DJ001
    unique_keeps = models.PositiveSmallIntegerField(db_default=0)
    concurrency_key = models.CharField(  # noqa: DJ001
        max_length=255, null=True, blank=True, default=None
    )
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True, default=None)
    # The key, limit and period (in ms) of a rate-limited task (conveyor.flow.RateLimit).
    rate_key = models.CharField(max_length=255, null=True, blank=True, default=None)  # noqa: DJ001
    rate_limit = models.PositiveIntegerField(null=True, blank=True, default=None)
    rate_period_ms = models.PositiveBigIntegerField(null=True, blank=True, default=None)
    # What the enqueuer and the running task say about it (progress, trace context); NULL
    # until someone gives any. Written by key, so concurrent writers keep each other's keys.
    metadata = models.JSONField(null=True, blank=True)

    objects = TaskRecordQuerySet.as_manager()

    class Meta:
        db_table = "conveyor_task"
        verbose_name = "task"
        ordering = ("-id",)
        indexes = (
            # The claim: due READY rows in the whole claim order (id last, which breaks ties
            # among rows inserted together), so the first rows are read and nothing is sorted;
            # status and hold lead, so neither history nor held rows are ever read.
            PartialIndex(
                fields=[
                    "status",
                    "hold",
                    "-priority",
                    "available_after",
                    "attempt_count",
                    "enqueued_at",
                    "id",
                ],
                name="conveyor_task_claim",
                where=Q(status=TaskResultStatus.READY),
            ),
            # Staging: the rows held for their time that have become due, earliest first.
            PartialIndex(
                fields=["status", "hold", "available_after"],
                name="conveyor_task_waiting",
                where=Q(status=TaskResultStatus.READY, hold=HOLD_TIME),
            ),
            # The tasks held by workers: recovery, cancel requests, the gauges.
            PartialIndex(
                fields=["status", "worker_id"],
                name="conveyor_task_running",
                where=Q(status=TaskResultStatus.RUNNING),
            ),
            models.Index(fields=["task_path", "-enqueued_at"], name="conveyor_task_path"),
            models.Index(fields=["finished_at"], name="conveyor_task_finished"),
            models.Index(fields=["enqueued_at"], name="conveyor_task_enqueued"),
            # The admin's queue and status filters, newest first; without it a combination
            # that matches nothing (no failed tasks in a queue) reads the whole table.
            models.Index(fields=["queue_name", "status", "id"], name="conveyor_task_queue"),
            # A concurrency key's slot holders and waiting tasks.
            PartialIndex(
                fields=["concurrency_key", "status", "hold"],
                name="conveyor_task_slots",
                where=Q(concurrency_key__isnull=False),
            ),
        )
        constraints = (
            # One live task per unique key (NULL keys never conflict, on every database).
            models.UniqueConstraint(
                fields=["backend_name", "unique_key"], name="conveyor_task_unique"
            ),
        )

    def __str__(self) -> str:
        return f"{self.task_path} #{self.pk} ({self.status})"


class Attempt(models.Model):
    """One run of a task by one worker, written when the run ends."""

    class Status(models.TextChoices):
        SUCCESSFUL = TaskResultStatus.SUCCESSFUL.value, TaskResultStatus.SUCCESSFUL.label
        FAILED = TaskResultStatus.FAILED.value, TaskResultStatus.FAILED.label
        # The task asked to run again later (conveyor.Snooze): not a failure.
        SNOOZED = "SNOOZED", "Snoozed"

    id = models.BigAutoField(primary_key=True)
    task = models.ForeignKey(TaskRecord, on_delete=DB_CASCADE, related_name="attempts")
    worker_id = models.CharField(max_length=WORKER_ID_MAX_LENGTH)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices)

    class Meta:
        db_table = "conveyor_attempt"
        ordering = ("id",)

    def __str__(self) -> str:
        return f"attempt #{self.pk} of task #{self.task_id} ({self.status})"


class Error(models.Model):
    """The exception that ended a failed attempt."""

    attempt = models.OneToOneField(
        Attempt, on_delete=DB_CASCADE, primary_key=True, related_name="error"
    )
    exception_class_path = models.CharField(max_length=255)
    traceback = models.TextField()

    class Meta:
        db_table = "conveyor_error"

    def __str__(self) -> str:
        return self.exception_class_path


class WorkerRecord(models.Model):
    """A running worker, as it announces itself with heartbeats."""

    id = models.BigAutoField(primary_key=True)
    worker_id = models.CharField(max_length=WORKER_ID_MAX_LENGTH, unique=True)
    backend_name = models.CharField(max_length=BACKEND_NAME_MAX_LENGTH)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    # Queue names served; empty means every queue of the backend but the excluded ones.
    queues = models.JSONField(default=list)
    excluded_queues = models.JSONField(default=list)
    started_at = models.DateTimeField(db_default=Now())
    last_heartbeat_at = models.DateTimeField(db_default=Now())
    # Threads still running a sync task recorded at its timeout (see worker/pool.py).
    stuck_threads = models.PositiveIntegerField(db_default=0)

    class Meta:
        db_table = "conveyor_worker"
        verbose_name = "worker"
        ordering = ("started_at",)

    def __str__(self) -> str:
        return self.worker_id


class Lease(models.Model):
    """An expiring claim on upkeep that one worker at a time should do (e.g. retention).

    Taken and renewed by compare-and-set against the database clock; a holder that dies
    simply lets it expire.
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=WORKER_ID_MAX_LENGTH, blank=True, default="")
    expires_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "conveyor_lease"

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.expires_at}"


class ScheduleTick(models.Model):
    """A tick of a schedule that has been enqueued: the unique constraint lets exactly one
    worker insert it, in the same transaction as its task. Pruned after the schedule's
    catch_up_window, the newest of each schedule kept."""

    id = models.BigAutoField(primary_key=True)
    backend_name = models.CharField(max_length=BACKEND_NAME_MAX_LENGTH)
    schedule_name = models.CharField(max_length=SCHEDULE_NAME_MAX_LENGTH)
    tick = models.DateTimeField()
    # The task enqueued for it (not a foreign key: retention may delete the task first).
    task_id = models.BigIntegerField(null=True, blank=True)
    enqueued_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "conveyor_schedule_tick"
        # The admin lists the schedules of the settings under this model (see admin/).
        verbose_name = "schedule"
        constraints = (
            models.UniqueConstraint(
                fields=["backend_name", "schedule_name", "tick"], name="conveyor_tick_once"
            ),
        )

    def __str__(self) -> str:
        return f"{self.schedule_name} at {self.tick}"


class PausedQueue(models.Model):
    """A queue no worker of its backend claims from until it is resumed."""

    id = models.BigAutoField(primary_key=True)
    backend_name = models.CharField(max_length=BACKEND_NAME_MAX_LENGTH)
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    paused_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "conveyor_paused_queue"
        # The admin lists every queue under this model, with pause and resume (see admin/).
        verbose_name = "queue"
        constraints = (
            models.UniqueConstraint(
                fields=["backend_name", "queue_name"], name="conveyor_paused_queue_once"
            ),
        )

    def __str__(self) -> str:
        return self.queue_name


class Semaphore(models.Model):
    """The lock of one concurrency key: a slot is taken or given, and waiting tasks promoted,
    only while holding this row, so that the count of holders read under it is exact."""

    id = models.BigAutoField(primary_key=True)
    backend_name = models.CharField(max_length=BACKEND_NAME_MAX_LENGTH)
    key = models.CharField(max_length=255)

    class Meta:
        db_table = "conveyor_semaphore"
        verbose_name = "concurrency limit"
        constraints = (
            models.UniqueConstraint(fields=["backend_name", "key"], name="conveyor_semaphore_key"),
        )

    def __str__(self) -> str:
        return f"{self.backend_name}:{self.key}"


class RateWindow(models.Model):
    """The starts counted in one window of one rate-limit key; a start is counted only while
    fewer than the limit are, by one compare-and-set UPDATE. Windows before the current one
    are deleted as the next opens."""

    id = models.BigAutoField(primary_key=True)
    backend_name = models.CharField(max_length=BACKEND_NAME_MAX_LENGTH)
    key = models.CharField(max_length=255)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    # The limit and period the window was opened with (for reports: when the next opens).
    limit = models.PositiveIntegerField(default=0)
    period_ms = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "conveyor_rate_window"
        constraints = (
            models.UniqueConstraint(
                fields=["backend_name", "key", "window_start"], name="conveyor_rate_window_once"
            ),
        )

    def __str__(self) -> str:
        return f"{self.key} from {self.window_start}: {self.count}"


class MinuteCount(models.Model):
    """The tasks of one backend that finished in one minute (or hour), per queue, task path
    and final status, and how long they waited: the dashboard's history, rolled up from the
    task rows by the worker's maintenance (conveyor.worker.rollup), kept after their purge."""

    id = models.BigAutoField(primary_key=True)
    backend_name = models.CharField(max_length=BACKEND_NAME_MAX_LENGTH)
    # 1: the row counts one minute; 60: a whole hour (the sum of its minutes, written once the
    # hour is rolled up), so the day's chart reads 24 rows per path, not 1,440.
    span_minutes = models.PositiveSmallIntegerField(default=1)
    minute = models.DateTimeField()
    # The minute's hour, so that the day's chart groups by a column, not by a function of it
    # (which SQLite computes in Python, row by row).
    hour = models.DateTimeField()
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    task_path = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=TaskResultStatus.choices)
    count = models.PositiveIntegerField(default=0)
    # Those that ran (a task cancelled before it started has no wait), and of them, how many
    # waited at most each bound of conveyor.columns.WAIT_BUCKETS_MS (cumulative, so they sum).
    waited = models.PositiveIntegerField(default=0)
    wait_le_10ms = models.PositiveIntegerField(default=0)
    wait_le_50ms = models.PositiveIntegerField(default=0)
    wait_le_100ms = models.PositiveIntegerField(default=0)
    wait_le_250ms = models.PositiveIntegerField(default=0)
    wait_le_500ms = models.PositiveIntegerField(default=0)
    wait_le_1000ms = models.PositiveIntegerField(default=0)
    wait_le_2500ms = models.PositiveIntegerField(default=0)
    wait_le_5000ms = models.PositiveIntegerField(default=0)
    wait_le_10000ms = models.PositiveIntegerField(default=0)
    wait_le_30000ms = models.PositiveIntegerField(default=0)
    wait_le_60000ms = models.PositiveIntegerField(default=0)
    wait_le_300000ms = models.PositiveIntegerField(default=0)
    wait_le_900000ms = models.PositiveIntegerField(default=0)
    wait_le_3600000ms = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "conveyor_minute"
        verbose_name = "finished per minute"
        constraints = (
            # Also the dashboard's index: a window's minutes (or hours) of one backend.
            models.UniqueConstraint(
                fields=[
                    "backend_name",
                    "span_minutes",
                    "minute",
                    "queue_name",
                    "task_path",
                    "status",
                ],
                name="conveyor_minute_key",
            ),
        )

    def __str__(self) -> str:
        return f"{self.minute} {self.task_path} {self.status}: {self.count}"


class RollupMark(models.Model):
    """How far a backend's finished tasks are rolled up into conveyor_minute: every minute
    before `rolled_until` is there, and none after it."""

    backend_name = models.CharField(max_length=BACKEND_NAME_MAX_LENGTH, primary_key=True)
    rolled_until = models.DateTimeField()

    class Meta:
        db_table = "conveyor_rollup_mark"

    def __str__(self) -> str:
        return f"{self.backend_name} until {self.rolled_until}"
