"""A task's way through the store: insert, claim, finish (with the retry policy), release.

The portable statements serve SQLite and MariaDB/MySQL; PostgreSQL overrides the hooks
`insert_batch`, `claim_rows`, `write_outcomes` and `write_and_claim` with statements of its
own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Min

from conveyor.columns import HOLD_NONE, HOLD_TIME
from conveyor.compat import TaskError, TaskResultStatus
from conveyor.exceptions import SnoozeLimit
from conveyor.failures import cancelled_while_running, error_from_message
from conveyor.flow import KEEP_BITS
from conveyor.models import Attempt, Error, TaskRecord
from conveyor.store import statements as sql
from conveyor.store.core import EngineCore
from conveyor.store.statements import placeholders
from conveyor.store.values import SNOOZED, NewTask, Outcome, QueueFilter, Written

logger = logging.getLogger(__name__)

READY = TaskResultStatus.READY
RUNNING = TaskResultStatus.RUNNING
SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAILED = TaskResultStatus.FAILED

INSERT_BATCH_SIZE = 1000


@dataclass(slots=True)
class Batch:
    """The writes of one finish batch, grouped so that equal updates share one statement."""

    now: datetime
    updates: dict[tuple[Any, ...], tuple[dict[str, Any], list[int]]] = field(default_factory=dict)
    attempts: list[tuple[TaskRecord, str, TaskError | None]] = field(default_factory=list)
    written: list[Written] = field(default_factory=list)

    def update(self, pk: int, key: tuple[Any, ...], values: dict[str, Any]) -> None:
        self.updates.setdefault(key, (values, []))[1].append(pk)


class Transitions(EngineCore):
    # -- enqueue ----------------------------------------------------------------------------

    def insert(self, tasks: Sequence[NewTask]) -> None:
        batches = [
            tasks[start : start + INSERT_BATCH_SIZE]
            for start in range(0, len(tasks), INSERT_BATCH_SIZE)
        ]

        def insert() -> None:
            if len(batches) == 1:
                self.insert_batch(batches[0])  # one statement: atomic, no BEGIN/COMMIT
                return
            with transaction.atomic(using=self.using, savepoint=False):
                for batch in batches:
                    self.insert_batch(batch)

        self.retrying(insert)

    def insert_batch(self, tasks: Sequence[NewTask]) -> None:
        """Engine hook: one multi-row INSERT ... RETURNING; fill in ids and times."""
        adapt = self.connection.ops.adapt_datetimefield_value
        params: list[Any] = []
        for task in tasks:
            *values, run_after = task.insert_values()
            stamp = None if run_after is None else adapt(run_after)
            params += [*values, stamp, stamp, stamp]  # run_after, available_after, hold
        row = sql.INSERT_TASK_ROW.format(json=self.json_placeholder, now=self.now_sql)
        statement = sql.INSERT_TASKS_SQL.format(
            task=self.table(TaskRecord), rows=", ".join([row] * len(tasks))
        )
        with self.connection.cursor() as cursor:
            cursor.execute(statement, params)
            self.fill_inserted(tasks, cursor.fetchall())

    def fill_inserted(self, tasks: Sequence[NewTask], returned: Sequence[Any]) -> None:
        """Give inserted tasks what the INSERT returned: id, enqueued_at, available_after."""
        for task, (pk, enqueued_at, available_after) in zip(tasks, returned, strict=True):
            task.pk = pk
            task.enqueued_at = self.rows.datetime(enqueued_at)
            task.available_after = self.rows.datetime(available_after)

    # -- claim ------------------------------------------------------------------------------

    def claim(self, *, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        if limit < 1:
            return []
        claimed = self.retrying(lambda: self.claim_rows(worker_id, queues, limit))
        claimed.sort(key=claim_sort_key)
        return claimed

    def claim_rows(self, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        """Engine hook: atomically mark due rows RUNNING for this worker; return them."""
        raise NotImplementedError

    def next_available_at(self, queues: QueueFilter) -> datetime | None:
        # Any due row means now (an index probe of conveyor_task_claim, unordered: an order
        # would be read from another index), else the earliest held for its time (of
        # conveyor_task_waiting). Rows waiting for a slot have no time.
        ready = self.task_rows().ready().filter(queues.as_q())
        due = ready.filter(hold=HOLD_NONE).order_by().values_list("available_after", flat=True)
        if found := list(due[:1]):
            return found[0]
        earliest: datetime | None = ready.filter(hold=HOLD_TIME).aggregate(
            next=Min("available_after")
        )["next"]
        return earliest

    def stage_statement(self) -> str:
        """The statement that makes rows held for their time claimable once due (STAGE_SQL)."""
        return sql.STAGE_SQL.format(task=self.table(TaskRecord), now=self.now_sql)

    def release_unheld(self, *, worker_id: str, held: Iterable[int]) -> int:
        held = sorted(set(held))
        statement = sql.RELEASE_UNHELD_SQL.format(
            task=self.table(TaskRecord),
            held=f" AND id NOT IN ({placeholders(held)})" if held else "",
        )

        def release() -> int:
            with self.connection.cursor() as cursor:
                cursor.execute(statement, [self.backend_name, worker_id, *held])
                count: int = cursor.rowcount
                return count

        released = self.retrying(release)
        if released:
            logger.warning(
                "Released %d tasks whose claim reply was lost worker=%s", released, worker_id
            )
        return released

    # -- finish -----------------------------------------------------------------------------

    def finish(self, *, worker_id: str, outcomes: Sequence[Outcome]) -> list[Written]:
        if not outcomes:
            return []
        holders = [worker_id] * len(outcomes)
        # Decided before the write: a policy is the user's code, kept out of the transaction.
        decided = [self.decided(outcome) for outcome in outcomes]
        return self.retrying(lambda: self.write_outcomes(decided, holders))

    def finish_and_claim(
        self, *, worker_id: str, outcomes: Sequence[Outcome], queues: QueueFilter, limit: int
    ) -> tuple[list[Written], list[TaskRecord]]:
        holders = [worker_id] * len(outcomes)
        decided = [self.decided(outcome) for outcome in outcomes]  # before: see finish()
        written, claimed = self.write_and_claim(decided, holders, worker_id, queues, max(limit, 0))
        claimed.sort(key=claim_sort_key)
        return written, claimed

    def write_and_claim(
        self,
        outcomes: Sequence[Outcome],
        holders: Sequence[str],
        worker_id: str,
        queues: QueueFilter,
        limit: int,
    ) -> tuple[list[Written], list[TaskRecord]]:
        """Engine hook: write_outcomes, then claim_rows (each skipped when it has nothing to
        do), each retried on its own. PostgreSQL sends both in one round trip."""
        written = self.retrying(lambda: self.write_outcomes(outcomes, holders)) if outcomes else []
        if limit < 1:
            return written, []
        return written, self.retrying(lambda: self.claim_rows(worker_id, queues, limit))

    def decided(self, outcome: Outcome) -> Outcome:
        """The outcome with the retry decision of a failure made (by `self.decider`, which
        the backend gives the engine); a policy's own failure replaces the error."""
        record = outcome.record
        if outcome.snooze is not None:
            return self.snooze_or_fail(outcome)
        if outcome.status != FAILED or outcome.decision is not None:
            return outcome
        earlier = record.attempt_count > 1 or record.started_at != record.last_attempted_at
        if outcome.result is None and outcome.history is None and earlier:
            # The policy's task_result counts attempts: read those that came before.
            outcome = replace(outcome, history=self.histories([record.pk]).get(record.pk, []))
        decision = self.decider(outcome)
        return replace(outcome, decision=decision, error=decision.error or outcome.error)

    def snooze_or_fail(self, outcome: Outcome) -> Outcome:
        """A snooze within the queue's max_snoozes, or else a failure (SnoozeLimit) under
        the retry policy."""
        record = outcome.record
        limit = self.options.policy(record.queue_name).max_snoozes
        if record.snoozes < limit:
            return outcome
        message = f"The task snoozed {record.snoozes} times, the most max_snoozes allows"
        failed = replace(
            outcome,
            status=FAILED,
            snooze=None,
            error=error_from_message(SnoozeLimit, message),
            exception=SnoozeLimit(message),
        )
        return self.decided(failed)

    def decide(self, outcome: Outcome) -> tuple[TaskResultStatus, timedelta | None]:
        """The state an outcome leaves its task in, and the retry's delay (None: final)."""
        if outcome.snooze is not None:
            return READY, outcome.snooze
        if outcome.status != FAILED:
            return outcome.status, None
        delay = (outcome.decision or self.decider(outcome)).retry_in
        return (FAILED, None) if delay is None else (READY, delay)

    def write_outcomes(self, outcomes: Sequence[Outcome], holders: Sequence[str]) -> list[Written]:
        """Engine hook, the one writer of a RUNNING task's next state: record each outcome
        whose task `holders[i]` still holds for the same attempt, in one transaction."""
        with self.write_transaction():
            held, now = self._lock_held([o.record.pk for o in outcomes])
            batch = Batch(now=now)
            for outcome, holder in zip(outcomes, holders, strict=True):
                attempt, held_by, cancel_requested_by = held.get(outcome.record.pk, (0, "", ""))
                if (attempt, held_by) != (outcome.record.attempt_count, holder):
                    log_lost_fence(outcome.record, holder)
                    continue
                self._settle(batch, outcome, cancel_requested_by)
            self._write(batch)
        return batch.written

    def _lock_held(self, ids: list[int]) -> tuple[dict[int, tuple[int, str, str]], datetime]:
        """Lock the RUNNING rows among ids; map id -> (attempt, holder, cancel requested by),
        and read the clock."""
        statement = sql.LOCK_HELD_SQL.format(
            task=self.table(TaskRecord),
            now=self.now_sql,
            ids=placeholders(ids),
            lock=" FOR UPDATE" if self.connection.features.has_select_for_update else "",
        )
        with self.connection.cursor() as cursor:
            cursor.execute(statement, ids)
            rows = cursor.fetchall()
        now = self.rows.datetime(rows[0][4]) if rows else self.database_now()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}, now

    def _settle(self, batch: Batch, outcome: Outcome, cancel_requested_by: str = "") -> None:
        record = outcome.record
        status, delay = self.decide(outcome)
        if delay is not None and cancel_requested_by:
            # Cancelled while the attempt ran: what would come back (a retry, a snooze) ends.
            outcome = stopped_by_cancel(outcome, cancel_requested_by)
            status, delay = FAILED, None
        if delay is not None:
            available_after = batch.now + delay
            kind = SNOOZED if outcome.snooze is not None else READY
            hold = HOLD_TIME if delay > timedelta(0) else HOLD_NONE
            values = {"available_after": available_after, "hold": hold}
            batch.update(record.pk, (kind, available_after, hold), values)
            batch.written.append(Written(outcome, READY, None, available_after))
        else:
            value = outcome.return_value if status == SUCCESSFUL else None
            values = {"finished_at": batch.now, "return_value": value}
            batch.update(record.pk, (status, json.dumps(value, sort_keys=True)), values)
            batch.written.append(Written(outcome, status, batch.now, None))
        batch.attempts.append((record, outcome.attempt_status, outcome.error))

    def _write(self, batch: Batch) -> None:
        """The UPDATEs (one per group of equal outcomes), then attempts and errors."""
        adapt = self.connection.ops.adapt_datetimefield_value
        table = self.table(TaskRecord)
        with self.connection.cursor() as cursor:
            for (status, *_), (values, ids) in batch.updates.items():
                if status in (READY, SNOOZED):
                    again = sql.RETRY_SQL if status == READY else sql.SNOOZE_SQL
                    statement = again.format(task=table, ids=placeholders(ids))
                    params = [adapt(values["available_after"]), values["hold"]]
                else:
                    statement = sql.FINAL_SQL.format(task=table, ids=placeholders(ids))
                    value = values["return_value"]
                    params = [
                        status,
                        adapt(values["finished_at"]),
                        None if value is None else json.dumps(value),
                        KEEP_BITS.get(status, 0),  # whether a unique key stays
                    ]
                cursor.execute(statement, [*params, *ids])
            self._insert_attempts(cursor, batch)

    def _insert_attempts(self, cursor: CursorWrapper, batch: Batch) -> None:
        if not batch.attempts:
            return
        adapt = self.connection.ops.adapt_datetimefield_value
        stopped = adapt(batch.now)
        params: list[Any] = []
        for record, status, _ in batch.attempts:
            started = adapt(record.last_attempted_at or batch.now)
            params += [record.pk, record.worker_id, started, stopped, status]
        failed = {record.pk: error for record, _, error in batch.attempts if error is not None}
        cursor.execute(
            sql.INSERT_ATTEMPTS_SQL.format(
                attempt=self.table(Attempt),
                rows=", ".join(["(%s, %s, %s, %s, %s)"] * len(batch.attempts)),
                returning=" RETURNING id, task_id" if failed else "",
            ),
            params,
        )
        if not failed:
            return
        error_params: list[Any] = []
        for attempt_id, task_id in cursor.fetchall():
            if (error := failed.get(task_id)) is not None:
                error_params += [attempt_id, error.exception_class_path, error.traceback]
        cursor.execute(
            sql.INSERT_ERRORS_SQL.format(
                error=self.table(Error), rows=", ".join(["(%s, %s, %s)"] * len(failed))
            ),
            error_params,
        )


def claim_sort_key(record: TaskRecord) -> tuple[Any, ...]:
    """The claim order, for rows a statement returned in no particular order."""
    return (
        -record.priority,
        record.available_after,
        record.attempt_count,
        record.enqueued_at,
        record.pk,
    )


def stopped_by_cancel(outcome: Outcome, requested_by: str) -> Outcome:
    """A failed or snoozed attempt of a task whose cancel was requested, as the end."""
    return replace(
        outcome,
        status=FAILED,
        snooze=None,
        error=cancelled_while_running(requested_by, outcome.error),
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
