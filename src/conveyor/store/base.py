"""The task store: the only code that changes a task's state.

Every change is a compare-and-set that states the state it expects and reports what it changed.
Engines (one per database) differ only in how they claim, how they open a write transaction,
which errors are worth retrying, and how they wake idle workers.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import Any, ClassVar

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Min, Model, Q
from django.db.models.functions import Now
from django.db.models.sql import Query
from django.tasks import TaskResultStatus
from django.tasks.base import TaskError

from conveyor.conf import BackendOptions
from conveyor.exceptions import ConveyorError, WorkerLost
from conveyor.models import Attempt, Error, TaskRecord, WorkerRecord

logger = logging.getLogger(__name__)

READY = TaskResultStatus.READY
RUNNING = TaskResultStatus.RUNNING
SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAILED = TaskResultStatus.FAILED

# The statements of a finish batch on SQLite and MariaDB/MySQL (PostgreSQL has its own, in
# one statement). Identifiers are interpolated, values are parameters.
LOCK_HELD_SQL = (
    "SELECT id, attempt_count, {now} FROM {task} "
    "WHERE id IN ({ids}) AND status = 'RUNNING' AND worker_id = %s ORDER BY id{lock}"
)
FINAL_SQL = (
    "UPDATE {task} SET status = %s, finished_at = %s, return_value = %s, worker_id = '' "
    "WHERE id IN ({ids})"
)
RETRY_SQL = (
    "UPDATE {task} SET status = 'READY', available_after = %s, worker_id = '' WHERE id IN ({ids})"
)
INSERT_ATTEMPTS_SQL = (
    "INSERT INTO {attempt} (task_id, worker_id, started_at, stopped_at, status) "
    "VALUES {rows}{returning}"
)
INSERT_ERRORS_SQL = (
    "INSERT INTO {error} (attempt_id, exception_class_path, traceback) VALUES {rows}"
)

INSERT_TASKS_SQL = (
    "INSERT INTO {task} (task_path, backend_name, queue_name, priority, takes_context, "
    "arguments, status, attempt_count, worker_id, run_after, available_after) VALUES {rows} "
    "RETURNING id, enqueued_at, available_after"
)

INSERT_BATCH_SIZE = 1000
PURGE_BATCH_SIZE = 500
TRANSIENT_RETRY_LIMIT = 12
TRANSIENT_BACKOFF_MAX = timedelta(seconds=2)


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
    pk: int | None = None
    enqueued_at: datetime | None = None
    available_after: datetime | None = None
    # What a new row holds; results read these like a TaskRecord's.
    status: ClassVar[TaskResultStatus] = TaskResultStatus.READY
    started_at: ClassVar[datetime | None] = None
    finished_at: ClassVar[datetime | None] = None
    last_attempted_at: ClassVar[datetime | None] = None
    return_value: ClassVar[Any] = None

    def insert_values(self) -> tuple[str, str, str, int, bool, str, datetime | None]:
        """What an INSERT takes from it: path, backend, queue, priority, takes_context,
        the arguments as JSON text, run_after."""
        return (
            self.task_path,
            self.backend_name,
            self.queue_name,
            self.priority,
            self.takes_context,
            self.arguments_json,
            self.run_after,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one claimed attempt ended, as the runner reports it."""

    record: TaskRecord
    status: TaskResultStatus
    return_value: Any = None
    error: TaskError | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """An outcome that reached the database, and the state it left the task in."""

    outcome: Outcome
    status: TaskResultStatus
    finished_at: datetime | None
    available_after: datetime | None


@dataclass(slots=True)
class _Batch:
    """The writes of one finish batch, grouped so that equal updates share one statement."""

    now: datetime
    updates: dict[tuple[Any, ...], tuple[dict[str, Any], list[int]]] = field(default_factory=dict)
    attempts: list[tuple[TaskRecord, TaskResultStatus, TaskError | None]] = field(
        default_factory=list
    )
    written: list[Written] = field(default_factory=list)

    def update(self, pk: int, key: tuple[Any, ...], values: dict[str, Any]) -> None:
        self.updates.setdefault(key, (values, []))[1].append(pk)


class TaskStore:
    """Task state changes for one backend alias, on one database."""

    vendor: ClassVar[str] = ""

    def __init__(self, *, backend_name: str, options: BackendOptions, using: str) -> None:
        self.backend_name = backend_name
        self.options = options
        self.using = using

    # -- plumbing -------------------------------------------------------------------------

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.using]

    @property
    def tasks(self) -> Any:
        """This backend's task rows."""
        return TaskRecord.objects.using(self.using).filter(backend_name=self.backend_name)

    def write_transaction(self) -> AbstractContextManager[None]:
        """A transaction that may write; engines may take their write lock up front."""
        return transaction.atomic(using=self.using)

    def is_transient(self, exc: DatabaseError) -> bool:
        """Whether an error is a lock conflict worth retrying (not an outage)."""
        return False

    def retrying[T](self, operation: Callable[[], T]) -> T:
        """Run an operation, retrying lock conflicts with jittered, capped back-off."""
        for attempt in range(TRANSIENT_RETRY_LIMIT):
            try:
                return operation()
            except DatabaseError as exc:
                if not self.is_transient(exc) or attempt == TRANSIENT_RETRY_LIMIT - 1:
                    raise
                if self.connection.in_atomic_block:
                    raise  # the caller's transaction is void; only the caller can retry it
                delay = min(0.01 * 2**attempt, TRANSIENT_BACKOFF_MAX.total_seconds())
                logger.debug("Lock conflict, retrying in %.3fs: %s", delay, exc)
                time.sleep(delay * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    # The database clock as SQL, in the form the engine stores datetimes in.
    now_sql: ClassVar[str] = "CURRENT_TIMESTAMP"

    def table(self, model: type[Model]) -> str:
        return self.connection.ops.quote_name(model._meta.db_table)

    def datetime_from_db(self, value: Any) -> datetime:
        """A datetime column value as the ORM would return it (aware, on USE_TZ)."""
        connection = self.connection
        column, converters = self._datetime_converters
        for converter in converters:
            value = converter(value, column, connection)
        converted: datetime = value
        return converted

    @cached_property
    def _datetime_converters(self) -> tuple[Any, list[Any]]:
        field = TaskRecord._meta.get_field("finished_at")
        column = field.get_col(TaskRecord._meta.db_table)
        converters = [
            *self.connection.ops.get_db_converters(column),
            *field.get_db_converters(self.connection),
        ]
        return column, converters

    def records_from_cursor(self, cursor: CursorWrapper) -> list[TaskRecord]:
        """Turn rows of conveyor_task (any column order) into TaskRecords with converters."""
        records, _ = self.records_and_extra_from_cursor(cursor)
        return records

    def records_and_extra_from_cursor(
        self, cursor: CursorWrapper
    ) -> tuple[list[TaskRecord], list[tuple[Any, ...]]]:
        """Rows of conveyor_task as TaskRecords, and per row the values of any further
        columns (not conveyor_task's) that the statement selected after them."""
        by_column = {f.column: f for f in TaskRecord._meta.concrete_fields}
        names = [column[0] for column in cursor.description]
        fields = [by_column[name] for name in names if name in by_column]
        compiler = self.connection.ops.compiler("SQLCompiler")(
            TaskRecord.objects.none().query, self.connection, self.using
        )
        converters = compiler.get_converters([f.get_col(TaskRecord._meta.db_table) for f in fields])
        rows = cursor.fetchall()
        width = len(fields)
        task_rows: Iterable[Sequence[Any]] = [row[:width] for row in rows]
        if converters:
            task_rows = compiler.apply_converters(task_rows, converters)
        attnames = [f.attname for f in fields]
        records = [TaskRecord.from_db(self.using, attnames, list(row)) for row in task_rows]
        return records, [tuple(row[width:]) for row in rows]

    def database_now(self) -> datetime:
        """Read the database's clock."""
        query = Query(None)
        query.add_annotation(Now(), "now")
        compiler = query.get_compiler(self.using)
        ((now,),) = compiler.results_iter()
        return now  # type: ignore[no-any-return]

    # -- enqueue ----------------------------------------------------------------------------

    def insert(self, records: Sequence[NewTask]) -> None:
        """Store new READY tasks, all or none; listening workers wake once they commit."""
        batches = [
            records[start : start + INSERT_BATCH_SIZE]
            for start in range(0, len(records), INSERT_BATCH_SIZE)
        ]

        def insert() -> None:
            if len(batches) == 1:
                self._insert_batch(batches[0])  # one statement: atomic, no BEGIN/COMMIT
                return
            with transaction.atomic(using=self.using, savepoint=False):
                for batch in batches:
                    self._insert_batch(batch)

        self.retrying(insert)

    # The placeholder of the JSON arguments (PostgreSQL casts the text to jsonb).
    json_placeholder: ClassVar[str] = "%s"

    def _insert_batch(self, records: Sequence[NewTask]) -> None:
        """One multi-row INSERT ... RETURNING; fills in each record's id and timestamps."""
        adapt = self.connection.ops.adapt_datetimefield_value
        params: list[Any] = []
        for record in records:
            *values, run_after = record.insert_values()
            stamp = None if run_after is None else adapt(run_after)
            # available_after: run_after, or else the database clock (see the row below)
            params += [*values, stamp, stamp]
        # A READY row, no attempt yet, held by nobody; enqueued_at is the column's default.
        row = (
            f"(%s, %s, %s, %s, %s, {self.json_placeholder}, 'READY', 0, '', %s, "
            f"COALESCE(%s, {self.now_sql}))"
        )
        sql = INSERT_TASKS_SQL.format(
            task=self.table(TaskRecord), rows=", ".join([row] * len(records))
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            returned = cursor.fetchall()
        self.fill_inserted(records, returned)

    def fill_inserted(self, records: Sequence[NewTask], returned: Sequence[Any]) -> None:
        """Give inserted records what the INSERT returned: id, enqueued_at, available_after."""
        for record, (pk, enqueued_at, available_after) in zip(records, returned, strict=True):
            record.pk = pk
            record.enqueued_at = self.datetime_from_db(enqueued_at)
            record.available_after = self.datetime_from_db(available_after)

    def wake_workers(self) -> None:
        """Wake idle workers now, where the database can (see PostgreSQLStore)."""

    # -- claim ------------------------------------------------------------------------------

    def claim(self, *, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        """Take up to `limit` due READY tasks, most urgent first, for this worker."""
        if limit < 1:
            return []
        claimed = self.retrying(lambda: self.claim_rows(worker_id, queues, limit))
        claimed.sort(key=claim_sort_key)
        return claimed

    def claim_rows(self, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        """Engine-specific claim: atomically mark rows RUNNING for this worker; return them."""
        raise NotImplementedError

    def next_available_at(self, queues: QueueFilter) -> datetime | None:
        """When the next READY task of these queues becomes due (past if one is due now)."""
        found: datetime | None = (
            self.tasks.ready().filter(queues.as_q()).aggregate(next=Min("available_after"))["next"]
        )
        return found

    # -- finish -----------------------------------------------------------------------------

    def finish(self, *, worker_id: str, outcomes: Sequence[Outcome]) -> list[Written]:
        """Record ended attempts; skip (and log) those whose task this worker no longer holds."""
        if not outcomes:
            return []
        return self.retrying(lambda: self._finish(worker_id, outcomes))

    def _finish(self, worker_id: str, outcomes: Sequence[Outcome]) -> list[Written]:
        with self.write_transaction():
            held, now = self._lock_held(worker_id, [o.record.pk for o in outcomes])
            batch = _Batch(now=now)
            for outcome in outcomes:
                if held.get(outcome.record.pk) != outcome.record.attempt_count:
                    log_lost_fence(outcome.record, worker_id)
                    continue
                self._settle(batch, outcome)
            self._write(batch)
        return batch.written

    def _lock_held(self, worker_id: str, ids: list[int]) -> tuple[dict[int, int], datetime]:
        """Lock the rows this worker still holds; map id -> attempt, and read the clock."""
        sql = LOCK_HELD_SQL.format(
            task=self.table(TaskRecord),
            now=self.now_sql,
            ids=placeholders(ids),
            lock=" FOR UPDATE" if self.connection.features.has_select_for_update else "",
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [*ids, worker_id])
            rows = cursor.fetchall()
        now = self.datetime_from_db(rows[0][2]) if rows else self.database_now()
        return {pk: attempt for pk, attempt, _ in rows}, now

    def decide(self, outcome: Outcome) -> tuple[TaskResultStatus, timedelta | None]:
        """The state an outcome leaves its task in, and the retry's delay (None: final)."""
        if outcome.status != FAILED:
            return outcome.status, None
        record = outcome.record
        delay = self.options.policy(record.queue_name).retry_delay(record.attempt_count)
        return (FAILED, None) if delay is None else (READY, delay)

    def _settle(self, batch: _Batch, outcome: Outcome) -> None:
        record = outcome.record
        status, delay = self.decide(outcome)
        if delay is not None:
            available_after = batch.now + delay
            batch.update(record.pk, (READY, available_after), {"available_after": available_after})
            batch.written.append(Written(outcome, READY, None, available_after))
        else:
            value = outcome.return_value if status == SUCCESSFUL else None
            values = {"finished_at": batch.now, "return_value": value}
            batch.update(record.pk, (status, json.dumps(value, sort_keys=True)), values)
            batch.written.append(Written(outcome, status, batch.now, None))
        batch.attempts.append((record, outcome.status, outcome.error))

    def _write(self, batch: _Batch) -> None:
        """The UPDATEs (one per group of equal outcomes), then attempts and errors."""
        ops = self.connection.ops
        table = self.table(TaskRecord)
        with self.connection.cursor() as cursor:
            for (status, _), (values, ids) in batch.updates.items():
                if status == READY:
                    sql = RETRY_SQL.format(task=table, ids=placeholders(ids))
                    params = [ops.adapt_datetimefield_value(values["available_after"])]
                else:
                    sql = FINAL_SQL.format(task=table, ids=placeholders(ids))
                    value = values["return_value"]
                    params = [
                        status,
                        ops.adapt_datetimefield_value(values["finished_at"]),
                        None if value is None else json.dumps(value),
                    ]
                cursor.execute(sql, [*params, *ids])
            self._insert_attempts(cursor, batch)

    def _insert_attempts(self, cursor: CursorWrapper, batch: _Batch) -> None:
        if not batch.attempts:
            return
        adapt = self.connection.ops.adapt_datetimefield_value
        stopped = adapt(batch.now)
        params: list[Any] = []
        for record, status, _ in batch.attempts:
            started = adapt(record.last_attempted_at or batch.now)
            params += [record.pk, record.worker_id, started, stopped, status]
        failed = {record.pk: error for record, _, error in batch.attempts if error is not None}
        sql = INSERT_ATTEMPTS_SQL.format(
            attempt=self.table(Attempt),
            rows=", ".join(["(%s, %s, %s, %s, %s)"] * len(batch.attempts)),
            returning=" RETURNING id, task_id" if failed else "",
        )
        cursor.execute(sql, params)
        if not failed:
            return
        error_params: list[Any] = []
        for attempt_id, task_id in cursor.fetchall():
            if (error := failed.get(task_id)) is not None:
                error_params += [attempt_id, error.exception_class_path, error.traceback]
        cursor.execute(
            INSERT_ERRORS_SQL.format(
                error=self.table(Error), rows=", ".join(["(%s, %s, %s)"] * len(failed))
            ),
            error_params,
        )

    def release_unheld(self, *, worker_id: str, held: Iterable[int]) -> int:
        """Hand back RUNNING tasks this worker holds but never received (a lost claim reply)."""
        unheld = self.tasks.running().filter(worker_id=worker_id).exclude(pk__in=list(held))
        released: int = self.retrying(
            lambda: unheld.update(status=READY, worker_id="", attempt_count=F("attempt_count") - 1)
        )
        if released:
            logger.warning(
                "Released %d tasks whose claim reply was lost worker=%s", released, worker_id
            )
        return released

    # -- worker registry and recovery -------------------------------------------------------

    def register_worker(
        self, *, worker_id: str, host: str, pid: int, queues: list[str], take_over: bool = False
    ) -> None:
        """Add this worker to the registry; take over a stale row left under the same id (or
        any row under it, with take_over: the caller knows its previous owner is dead)."""
        workers = WorkerRecord.objects.using(self.using)
        existing = workers.filter(worker_id=worker_id)
        fresh = existing.filter(last_heartbeat_at__gte=Now() - self.options.worker_timeout)
        if not take_over and (owner := fresh.values("host", "pid", "last_heartbeat_at").first()):
            raise WorkerIdInUse(
                f"Worker id {worker_id!r} is in use by a live worker (host {owner['host']}, "
                f"pid {owner['pid']}, last heartbeat {owner['last_heartbeat_at'].isoformat()})"
            )
        if existing.exists():
            # An earlier process under this id died: its tasks are lost, not ours.
            self.recover_lost(recovered_by=worker_id, only=worker_id)

        def register() -> None:
            with self.write_transaction():
                existing.delete()
                workers.create(
                    worker_id=worker_id,
                    backend_name=self.backend_name,
                    host=host,
                    pid=pid,
                    queues=queues,
                )

        self.retrying(register)

    def heartbeat(self, worker_id: str) -> bool:
        """Record that this worker is alive; False if its row is gone (it was declared dead)."""
        workers = WorkerRecord.objects.using(self.using).filter(worker_id=worker_id)
        return bool(self.retrying(lambda: workers.update(last_heartbeat_at=Now())))

    def deregister_worker(self, worker_id: str) -> None:
        WorkerRecord.objects.using(self.using).filter(worker_id=worker_id).delete()

    def recover_lost(self, *, recovered_by: str, only: str | None = None) -> list[Written]:
        """Fail the open attempts of dead or unregistered workers, then apply retry policies.

        Safe to run from several workers at once: rows are locked and re-checked, so each
        lost attempt is closed exactly once.
        """
        return self.retrying(lambda: self._recover_lost(recovered_by, only))

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
            lost = self.tasks.running().exclude(worker_id__in=alive)
            if only is not None:
                lost = lost.filter(worker_id=only)
            rows = list(lost.order_by("pk").select_for_update(skip_locked=True).annotate(now=Now()))
            batch = _Batch(now=rows[0].now if rows else self.database_now())
            for record in rows:
                error = lost_worker_error(
                    record.worker_id, seen.get(record.worker_id), recovered_by
                )
                self._settle(batch, Outcome(record, FAILED, error=error))
                logger.warning(
                    "Recovered task id=%s path=%s from lost worker=%s",
                    record.pk,
                    record.task_path,
                    record.worker_id,
                )
            self._write(batch)
            dead = workers.filter(backend_name=self.backend_name, last_heartbeat_at__lt=cutoff)
            dead.exclude(worker_id=recovered_by).delete()
        return batch.written

    # -- retention ----------------------------------------------------------------------------

    def purgeable(self, *, finished: bool, older_than: timedelta) -> Any:
        """Results finished longer than `older_than` ago; or READY tasks enqueued that long
        ago that were due that long ago too (a task deferred into the future is not stale)."""
        cutoff = Now() - older_than
        if finished:
            return self.tasks.finished().filter(finished_at__lt=cutoff)
        return self.tasks.ready().filter(enqueued_at__lt=cutoff, available_after__lt=cutoff)

    def purge(
        self,
        *,
        finished: bool,
        older_than: timedelta,
        limit: int | None = None,
        batch_size: int = PURGE_BATCH_SIZE,
    ) -> int:
        """Delete purgeable rows (with their attempts) in small batches; return how many."""
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


def placeholders(values: Sequence[Any] | frozenset[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def delete_rows(rows: Any) -> int:
    count: int = rows.delete()[0]
    return count


def claim_sort_key(record: TaskRecord) -> tuple[Any, ...]:
    """The claim order, for rows a statement returned in no particular order."""
    return (
        record.available_after,
        -record.priority,
        record.attempt_count,
        record.enqueued_at,
        record.pk,
    )


class WorkerIdInUse(ConveyorError):
    """Another live worker uses this worker id."""


def lost_worker_error(worker_id: str, last_seen: datetime | None, recovered_by: str) -> TaskError:
    path = f"{WorkerLost.__module__}.{WorkerLost.__qualname__}"
    if last_seen is None:
        why = f"Worker {worker_id!r} is not registered (it exited or was removed)"
    else:
        why = (
            f"Worker {worker_id!r} stopped sending heartbeats; "
            f"last heartbeat at {last_seen.isoformat()}"
        )
    return TaskError(
        exception_class_path=path,
        traceback=f"{path}: {why}; task taken back by worker {recovered_by!r}\n",
    )


def log_lost_fence(record: TaskRecord, worker_id: str) -> None:
    logger.warning(
        "Task id=%s path=%s attempt=%s is no longer held by worker=%s; "
        "its outcome is discarded (recovery took it back)",
        record.pk,
        record.task_path,
        record.attempt_count,
        worker_id,
    )
