"""Flow control in the database: unique tasks and concurrency slots.

A unique task's key sits under a unique constraint (conveyor_task_unique); its insert does
nothing when a live task holds the key, and the caller gets that task instead. The write
that moves a task out of its unique states clears the key.

A concurrency key's slots are counted, never kept as a counter: the tasks holding one are
its READY (not waiting for a slot) and RUNNING tasks. A slot is taken at enqueue and given
back when the task ends, each while holding the key's row of conveyor_semaphore, so the
count read under that lock is exact and the limit is never passed. A task over the limit is
READY with hold = HOLD_SLOT, outside the claim's range, so it blocks nobody; it is promoted
when a slot frees (after a finish, a recovery, a cancel or a delete, and by every worker's
maintenance, which also covers a writer that died between the two transactions).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from django.db.models import Count, Max, Q
from django.db.models.functions import Now

from conveyor.columns import HOLD_NONE, HOLD_SLOT, HOLD_TIME
from conveyor.compat import TaskResultStatus
from conveyor.models import RateWindow, Semaphore, TaskRecord
from conveyor.store.statements import placeholders
from conveyor.store.transitions import Transitions
from conveyor.store.values import NewTask, Outcome, QueueFilter, RateState, SlotState, Written

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
HOLDING = Q(status=RUNNING) | Q(status=READY, hold__in=(HOLD_NONE, HOLD_TIME))

# One row that may conflict with a live task's unique key: the conflict makes it a no-op
# (INSERT IGNORE on MariaDB/MySQL), and RETURNING says whether it was inserted.
INSERT_CONTROLLED_SQL = (
    "{insert} INTO {task} (task_path, backend_name, queue_name, priority, takes_context, "
    "arguments, metadata, status, attempt_count, worker_id, run_after, available_after, hold, "
    "unique_key, unique_keeps, concurrency_key, concurrency_limit, rate_key, rate_limit, "
    "rate_period_ms) "
    "VALUES (%s, %s, %s, %s, %s, {json}, {json}, 'READY', 0, '', %s, COALESCE(%s, {now}), "
    "CASE WHEN %s THEN 2 WHEN %s > {now} THEN 1 ELSE 0 END, %s, %s, %s, %s, %s, %s, %s)"
    "{conflict} "
    "RETURNING id, enqueued_at, available_after"
)
# Rate limits: make sure the key's current window has its counter (a racing creator's is as
# good), then, holding its row, read the count and add the starts that fit under the limit.
INSERT_WINDOW_SQL = (
    "{insert} INTO {window} (backend_name, {key}, window_start, {count}, {limit}, period_ms) "
    "VALUES (%s, %s, %s, 0, %s, %s){conflict}"
)
COUNT_STARTS_SQL = (
    "SELECT {count} FROM {window} WHERE backend_name = %s AND {key} = %s AND window_start = %s"
    "{lock}"
)
TAKE_STARTS_SQL = (
    "UPDATE {window} SET {count} = {count} + %s "
    "WHERE backend_name = %s AND {key} = %s AND window_start = %s"
)
# A later window of the key: a claim whose starts are counted after another worker opened
# that window (and pruned this one) must not count them in a window opened afresh.
NEWER_WINDOW_SQL = (
    "SELECT 1 FROM {window} WHERE backend_name = %s AND {key} = %s AND window_start > %s"
)
PRUNE_WINDOWS_SQL = (
    "DELETE FROM {window} WHERE backend_name = %s AND {key} = %s AND window_start < %s"
)
# A claimed task over its rate limit goes back, unattempted, held until its next window.
DEFER_SQL = (
    "UPDATE {task} SET status = 'READY', worker_id = '', hold = 1, available_after = %s, "
    # before attempt_count: MariaDB/MySQL assign from left to right, seeing earlier changes
    "started_at = CASE WHEN attempt_count = 1 THEN NULL ELSE started_at END, "
    "attempt_count = attempt_count - 1 "
    "WHERE id IN ({ids}) AND status = 'RUNNING' AND worker_id = %s"
)
# Make sure a concurrency key has its lock row; a racing creator's row is as good.
INSERT_SEMAPHORE_SQL = "{insert} INTO {semaphore} (backend_name, {key}) VALUES (%s, %s){conflict}"
# Ids of running holders a report names per concurrency key.
HOLDERS_SHOWN = 10
# How many times an insert looks again for the live task whose key it conflicted with (that
# task may end in between, freeing the key).
CONFLICT_TRIES = 5


class FlowControl(Transitions):
    # INSERT ... ON CONFLICT DO NOTHING on PostgreSQL and SQLite; MySQL engines override.
    insert_ignore: ClassVar[tuple[str, str]] = ("INSERT", " ON CONFLICT DO NOTHING")

    def claim(self, *, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        claimed = super().claim(worker_id=worker_id, queues=queues, limit=limit)
        return self.within_rates(worker_id, claimed)

    def finish_and_claim(
        self, *, worker_id: str, outcomes: Sequence[Outcome], queues: QueueFilter, limit: int
    ) -> tuple[list[Written], list[TaskRecord]]:
        written, claimed = super().finish_and_claim(
            worker_id=worker_id, outcomes=outcomes, queues=queues, limit=limit
        )
        self.promote(freed_keys(written))  # in its own transaction, as finish() does
        return written, self.within_rates(worker_id, claimed)

    def within_rates(self, worker_id: str, claimed: list[TaskRecord]) -> list[TaskRecord]:
        """The claimed tasks their rate limits let start now; the others go back to wait."""
        limited = [record for record in claimed if record.rate_key is not None]
        if not limited:
            return claimed
        deferred = self.retrying(lambda: self._take_starts(worker_id, limited))
        return [record for record in claimed if record.pk not in deferred]

    def _take_starts(self, worker_id: str, records: list[TaskRecord]) -> set[int]:
        """Count the rate-limited starts in their windows, a few statements per key and
        window; defer those over the limit to the next window. Return the ids deferred."""
        groups: dict[tuple[str, datetime, datetime, int], list[TaskRecord]] = defaultdict(list)
        for record in records:
            start, end = window_of(record)
            groups[(record.rate_key or "", start, end, record.rate_limit or 0)].append(record)
        deferred: set[int] = set()
        with self.write_transaction(), self.connection.cursor() as cursor:
            for (key, start, end, limit), rows in groups.items():
                period_ms = rows[0].rate_period_ms or 1
                taken = self._take_starts_of(
                    cursor, key, start, limit, wanted=len(rows), period_ms=period_ms
                )
                over = [record.pk for record in rows[taken:]]
                if over:
                    statement = DEFER_SQL.format(
                        task=self.table(TaskRecord), ids=placeholders(over)
                    )
                    cursor.execute(statement, [self.adapt(end), *over, worker_id])
                    deferred.update(over)
        return deferred

    def _take_starts_of(
        self, cursor: Any, key: str, start: datetime, limit: int, *, wanted: int, period_ms: int
    ) -> int:
        """Take up to `wanted` starts from a key's window; return how many were taken."""
        quote = self.connection.ops.quote_name
        names = {"window": self.table(RateWindow), "key": quote("key"), "count": quote("count")}
        insert, conflict = self.insert_ignore
        stamp = self.adapt(start)
        cursor.execute(
            INSERT_WINDOW_SQL.format(
                insert=insert, conflict=conflict, limit=quote("limit"), **names
            ),
            [self.backend_name, key, stamp, limit, period_ms],
        )
        cursor.execute(PRUNE_WINDOWS_SQL.format(**names), [self.backend_name, key, stamp])
        lock = " FOR UPDATE" if self.connection.features.has_select_for_update else ""
        cursor.execute(COUNT_STARTS_SQL.format(lock=lock, **names), [self.backend_name, key, stamp])
        found = cursor.fetchone()
        if found is None:
            # A newer window's prune, committed since the insert above, took the row: under
            # READ COMMITTED the locked read skips a row deleted meanwhile. A late claim.
            return 0
        (counted,) = found
        cursor.execute(NEWER_WINDOW_SQL.format(**names), [self.backend_name, key, stamp])
        if cursor.fetchone() is not None:
            return 0  # a late claim: its window has passed; the tasks wait for the current one
        taken: int = max(0, min(wanted, limit - int(counted)))
        if taken:
            cursor.execute(TAKE_STARTS_SQL.format(**names), [taken, self.backend_name, key, stamp])
        return taken

    def adapt(self, moment: datetime) -> Any:
        return self.connection.ops.adapt_datetimefield_value(moment)

    def finish(self, *, worker_id: str, outcomes: Sequence[Outcome]) -> list[Written]:
        written = super().finish(worker_id=worker_id, outcomes=outcomes)
        self.promote(freed_keys(written))  # in its own transaction: see the module's docstring
        return written

    def insert_controlled(self, tasks: Sequence[NewTask]) -> list[int | None]:
        def write() -> list[int | None]:
            with self.write_transaction():
                return [self._insert_controlled(task) for task in tasks]

        found = self.retrying(write)
        if any(pk is None for pk in found):
            self.wake_workers()
        return found

    def _insert_controlled(self, task: NewTask) -> int | None:
        blocked = False
        if task.concurrency_key is not None:
            self._lock_key(task.concurrency_key)
            limit = task.concurrency_limit or 1
            blocked = self._holders(task.concurrency_key) >= limit
        for _ in range(CONFLICT_TRIES):
            if self._insert_row(task, blocked=blocked):
                return None
            live = self.task_rows().filter(unique_key=task.unique_key).values_list("pk", flat=True)
            if (pk := live.first()) is not None:
                return pk
        raise RuntimeError(f"unique key of {task.task_path} kept changing; try again")

    def _insert_row(self, task: NewTask, *, blocked: bool) -> bool:
        adapt = self.connection.ops.adapt_datetimefield_value
        *values, run_after = task.insert_values()
        stamp = None if run_after is None else adapt(run_after)
        insert, conflict = self.insert_ignore
        statement = INSERT_CONTROLLED_SQL.format(
            insert=insert,
            conflict=conflict,
            task=self.table(TaskRecord),
            json=self.json_placeholder,
            now=self.now_sql,
        )
        params: list[Any] = [*values, stamp, stamp, blocked, stamp]
        params += [task.unique_key, task.unique_keeps, task.concurrency_key]
        params += [task.concurrency_limit, task.rate_key, task.rate_limit, task.rate_period_ms]
        with self.connection.cursor() as cursor:
            cursor.execute(statement, params)
            returned = cursor.fetchall()
        if not returned:
            return False
        self.fill_inserted([task], returned)
        return True

    def _lock_key(self, key: str) -> None:
        """Hold the key's lock row until the transaction ends."""
        insert, conflict = self.insert_ignore
        statement = INSERT_SEMAPHORE_SQL.format(
            insert=insert,
            conflict=conflict,
            semaphore=self.table(Semaphore),
            key=self.connection.ops.quote_name("key"),
        )
        with self.connection.cursor() as cursor:
            cursor.execute(statement, [self.backend_name, key])
        rows = Semaphore.objects.using(self.using).filter(backend_name=self.backend_name, key=key)
        rows.select_for_update().get()

    def _holders(self, key: str) -> int:
        return self.task_rows().filter(HOLDING, concurrency_key=key).count()

    def promote(self, keys: Iterable[str]) -> int:
        promoted = 0
        for key in sorted(set(keys)):
            promoted += self.retrying(lambda key=key: self._promote(key))  # type: ignore[misc]
        if promoted:
            self.wake_workers()
        return promoted

    def _promote(self, key: str) -> int:
        waiting = self.task_rows().filter(concurrency_key=key, status=READY, hold=HOLD_SLOT)
        if not waiting.exists():
            return 0  # the common case, without a transaction or the key's lock
        with self.write_transaction():
            limit = waiting.aggregate(limit=Max("concurrency_limit"))["limit"]
            if limit is None:
                return 0
            self._lock_key(key)
            free = limit - self._holders(key)
            if free <= 0:
                return 0
            ids = list(waiting.order_by("-priority", "pk").values_list("pk", flat=True)[:free])
            chosen = self.task_rows().filter(pk__in=ids, status=READY, hold=HOLD_SLOT)
            later = chosen.filter(available_after__gt=Now()).update(hold=HOLD_TIME)
            return later + chosen.update(hold=HOLD_NONE)

    def rate_states(self) -> list[RateState]:
        windows = RateWindow.objects.using(self.using).filter(backend_name=self.backend_name)
        waiting = dict(
            self.task_rows()
            .filter(status=READY, hold=HOLD_TIME, rate_key__isnull=False)
            .values("rate_key")
            .annotate(n=Count("pk"))
            .order_by()
            .values_list("rate_key", "n")
        )
        # Earlier windows are deleted as a later one opens: one row per key, but for a race.
        latest: dict[str, RateWindow] = {}
        for window in windows.order_by("key", "window_start"):
            latest[window.key] = window
        return [
            RateState(
                key=key,
                limit=window.limit,
                period=timedelta(milliseconds=window.period_ms),
                window_start=window.window_start,
                starts=window.count,
                waiting=waiting.get(key, 0),
            )
            for key, window in sorted(latest.items())
        ]

    def waiting_keys(self) -> list[str]:
        rows = self.task_rows().filter(status=READY, hold=HOLD_SLOT)
        keys = rows.order_by().values_list("concurrency_key", flat=True).distinct()
        return sorted(key for key in keys if key is not None)

    def slots(self) -> list[SlotState]:
        rows = (
            self.task_rows()
            .filter(concurrency_key__isnull=False, status__in=(READY, RUNNING))
            .values("concurrency_key")
            .annotate(
                limit=Max("concurrency_limit"),
                holding=Count("pk", filter=HOLDING),
                running=Count("pk", filter=Q(status=RUNNING)),
                waiting=Count("pk", filter=Q(status=READY, hold=HOLD_SLOT)),
            )
            .order_by("concurrency_key")
        )
        return [
            SlotState(
                str(r["concurrency_key"]),
                r["limit"] or 0,
                r["holding"],
                r["running"],
                r["waiting"],
                holders=self._running_holders(str(r["concurrency_key"])),
            )
            for r in rows
        ]

    def _running_holders(self, key: str) -> tuple[int, ...]:
        running = self.task_rows().filter(concurrency_key=key, status=RUNNING).order_by("pk")
        return tuple(running.values_list("pk", flat=True)[:HOLDERS_SHOWN])


def freed_keys(written: Iterable[Written]) -> set[str]:
    """The concurrency keys of tasks that reached a final state, giving their slot back."""
    return {
        key
        for item in written
        if item.status not in (READY, RUNNING)
        and (key := item.outcome.record.concurrency_key) is not None
    }


def window_of(record: TaskRecord) -> tuple[datetime, datetime]:
    """The rate window a claimed task's start falls in (the claim's database clock), aligned
    on the period: its start and its end."""
    period_ms = record.rate_period_ms or 1
    started = record.last_attempted_at or record.available_after
    start_ms = int(started.timestamp() * 1000) // period_ms * period_ms
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    return start, start + timedelta(milliseconds=period_ms)
