"""What every engine's operations stand on: the connection, transactions, lock-conflict
retries, the database clock, and the backend's task rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, suppress
from datetime import datetime
from functools import cached_property
from typing import ClassVar

from django.db import DatabaseError, InterfaceError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.functions import Now
from django.db.models.sql import Query

from conveyor.backoff import Backoff
from conveyor.conf import BackendOptions
from conveyor.models import Attempt, TaskRecord, TaskRecordQuerySet
from conveyor.store.engine import WakeupSource
from conveyor.store.rows import RowReader, task_columns
from conveyor.store.values import Decision, Outcome, RetryDecider

logger = logging.getLogger(__name__)

# Lock conflicts are retried this often, 10 ms doubling up to 2 s, with jitter.
TRANSIENT_BACKOFF = Backoff.exponential(first=0.01, cap=2.0, steps=12)


class EngineCore:
    """Plumbing shared by the engine's parts. Engines set `vendor` and, where their SQL
    differs, `now_sql` and `json_placeholder`."""

    vendor: ClassVar[str] = ""
    # The database clock as SQL, in the form the engine stores datetimes in.
    now_sql: ClassVar[str] = "CURRENT_TIMESTAMP"
    # The placeholder of a JSON value (PostgreSQL casts the text to jsonb).
    json_placeholder: ClassVar[str] = "%s"

    def __init__(
        self,
        *,
        backend_name: str,
        options: BackendOptions,
        using: str,
        decider: RetryDecider | None = None,
    ) -> None:
        self.backend_name = backend_name
        self.options = options
        self.using = using
        self.decider: RetryDecider = decider or queue_decider(options)

    @property
    def connection(self) -> BaseDatabaseWrapper:
        """This thread's connection (Django keeps one per thread)."""
        return connections[self.using]

    @cached_property
    def rows(self) -> RowReader:
        return RowReader(self.using)

    @cached_property
    def returned_columns(self) -> str:
        """Every column of conveyor_task as the claims select them, from the table aliased
        `task` (see TASK_COLUMNS)."""
        return task_columns(self.connection.ops.quote_name, "task")

    def table(self, model: type[Model]) -> str:
        return self.connection.ops.quote_name(model._meta.db_table)

    def task_rows(self) -> TaskRecordQuerySet:
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
        attempts = len(TRANSIENT_BACKOFF.schedule)
        for attempt in range(attempts):
            try:
                return operation()
            except DatabaseError as exc:
                if not self.is_transient(exc) or attempt == attempts - 1:
                    raise
                if self.connection.in_atomic_block:
                    raise  # the caller's transaction is void; only the caller can retry it
                delay = TRANSIENT_BACKOFF.jittered(attempt)
                logger.debug("Lock conflict, retrying in %.3fs: %s", delay, exc)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def histories(self, ids: Iterable[int]) -> dict[int, list[Attempt]]:
        """See Engine.histories() (reads.py)."""
        raise NotImplementedError

    def database_now(self) -> datetime:
        """Read the database's clock."""
        query = Query(None)
        query.add_annotation(Now(), "now")
        ((now,),) = query.get_compiler(self.using).results_iter()
        return now  # type: ignore[no-any-return]

    def reset_connection(self) -> None:
        """Drop this thread's connection, after an error left it unusable."""
        with suppress(DatabaseError, InterfaceError):
            self.connection.close()

    def wake_workers(self) -> None:
        """Wake idle workers now, where the database can (see the PostgreSQL engine)."""

    def wakeup_source(self) -> WakeupSource | None:
        """None: without notifications, idle workers poll."""
        return None

    def cancel_source(self) -> WakeupSource | None:
        """None: without notifications, workers read cancel requests with their heartbeat."""
        return None


def queue_decider(options: BackendOptions) -> RetryDecider:
    """Decide by the queue's max_attempts and backoff_factor alone (an engine built without
    the backend's decider, which also reads each task's options)."""

    def decide(outcome: Outcome) -> Decision:
        record = outcome.record
        failures = record.attempt_count - record.snoozes
        return Decision(options.policy(record.queue_name).retry_delay(failures))

    return decide
