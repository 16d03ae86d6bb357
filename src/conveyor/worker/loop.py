"""The worker loop: claim into free slots, flush finished attempts, sleep until there is work.

The loop owns the main thread's database connection. Tasks run in the ExecutionPool; their
outcomes come back through `_collect` and are written in batches by `_flush`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, InterfaceError, connections
from django.tasks import TaskResultStatus
from django.tasks.signals import task_finished
from django.utils import timezone

from conveyor.exceptions import WorkerInterrupted
from conveyor.models import Attempt, TaskRecord
from conveyor.results import error_of, import_task, make_result
from conveyor.store import Outcome, QueueFilter, TaskStore, Written
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.identity import Identity
from conveyor.worker.listener import Listener
from conveyor.worker.maintenance import Maintenance
from conveyor.worker.pool import ExecutionPool
from conveyor.worker.runner import error_from_message

logger = logging.getLogger(__name__)

FLUSH_DELAY = timedelta(milliseconds=5)
FLUSH_BATCH_SIZE = 200
OUTAGE_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

EXIT_OK = 0
EXIT_INTERRUPTED = 1


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    queues: QueueFilter
    concurrency: int = 1
    delay_min: timedelta = timedelta(milliseconds=50)
    delay_max: timedelta = timedelta(seconds=1)
    oneshot: bool = False
    shutdown_timeout: timedelta = timedelta(seconds=30)


class Worker:
    """Runs the tasks of one backend until stopped; see run()."""

    def __init__(self, store: TaskStore, identity: Identity, settings: WorkerSettings) -> None:
        self.store = store
        self.identity = identity
        self.settings = settings
        self.wakeup = threading.Event()
        self.pool = ExecutionPool(settings.concurrency, self._collect)
        self._lock = threading.Lock()
        self._pending: list[Outcome] = []
        self._oldest_pending = 0.0
        self._stopping_at: float | None = None
        self._hard_stop = False
        self._idle_delay = settings.delay_min.total_seconds()
        self._outage_since: float | None = None
        self._outage_attempts = 0
        self.health = DatabaseHealth()
        self._claim_uncertain = False
        self.heartbeat = Heartbeat(store, identity, settings.queues.served(), self.health)
        self.maintenance = Maintenance(
            store,
            identity.worker_id,
            on_written=self._announce,
            health=self.health,
        )
        self.listener = (
            Listener(store.using, self.wakeup.set) if store.vendor == "postgresql" else None
        )

    # -- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; finish running tasks (a second call stops at once)."""
        if self._stopping_at is None:
            self._stopping_at = time.monotonic() + self.settings.shutdown_timeout.total_seconds()
            logger.info("Worker=%s stopping: finishing running tasks", self.identity.worker_id)
        else:
            self._hard_stop = True
            logger.warning("Worker=%s stopping now", self.identity.worker_id)
        self.wakeup.set()

    def run(self) -> int:
        """Run until stopped (or, with oneshot, until nothing is due); return the exit status."""
        if not self._register():
            return EXIT_OK  # stopped before the database could be reached
        self.maintenance.start()
        if self.listener:
            self.listener.start()
        logger.info(
            "Worker=%s started backend=%s queues=%s concurrency=%d",
            self.identity.worker_id,
            self.store.backend_name,
            ",".join(self.settings.queues.served()) or "*",
            self.settings.concurrency,
        )
        status = EXIT_OK
        try:
            status = self._loop()
        finally:
            self._shut_down(clean=status == EXIT_OK)
        return status

    def _register(self) -> bool:
        """Join the registry, waiting out a database that cannot be reached yet."""
        while self._stopping_at is None:
            try:
                self.heartbeat.start()
            except (DatabaseError, InterfaceError) as exc:
                self._outage(exc)
            else:
                self._back_online()
                return True
        return False

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> int:
        while True:
            self.wakeup.clear()  # before looking, so a wake-up during the step is not lost
            if self._stopping_at is not None and (
                self._hard_stop or time.monotonic() >= self._stopping_at
            ):
                self._interrupt()
                return EXIT_INTERRUPTED
            try:
                claimed = self._step()
            except (DatabaseError, InterfaceError) as exc:
                self._outage(exc)
                continue
            self._back_online()
            idle = self.pool.idle() and not self._has_pending()
            if idle and (self._stopping_at is not None or (self.settings.oneshot and claimed == 0)):
                return EXIT_OK
            timeout = self._timeout(claimed)
            if timeout > 0:
                self.wakeup.wait(timeout)

    def _step(self) -> int | None:
        """Claim into free slots and flush what is due; return how many tasks were claimed
        (None when no slot was free or the worker is stopping)."""
        if self._claim_uncertain:
            self._reconcile()
        if self._stopping_at is not None:
            self._flush(force=True)
            return None
        free = self.pool.free()
        if free <= 0:
            self._flush()
            return None
        claimed = self._claim(free)
        if claimed < free and self._has_pending():
            # The queue ran dry: nothing will join the batch, so write it now; a retry it
            # schedules at once is due right away, so look again.
            self._flush(force=True)
            claimed += self._claim(self.pool.free())
        else:
            self._flush()
        return claimed

    def _claim(self, limit: int) -> int:
        self._claim_uncertain = True  # until the reply arrives, we may hold unknown rows
        records = self.store.claim(
            worker_id=self.identity.worker_id, queues=self.settings.queues, limit=limit
        )
        self._claim_uncertain = False
        histories = self._histories(records)
        for record in records:
            self.pool.submit(record, histories.get(record.pk, []))
        return len(records)

    def _timeout(self, claimed: int | None) -> float:
        """How long to wait for a wake-up before the next step."""
        if claimed and self.pool.free() > 0:
            self._idle_delay = self.settings.delay_min.total_seconds()
            return 0.0  # the batch was full: more may be due, claim again at once
        if self._has_pending():
            return FLUSH_DELAY.total_seconds()
        if claimed == 0:
            return self._idle_timeout()
        return self.settings.delay_max.total_seconds()  # busy: a finished task wakes us

    def _idle_timeout(self) -> float:
        """How long an idle worker sleeps: until the next known due time, within the bounds."""
        delay_min = self.settings.delay_min.total_seconds()
        delay_max = self.settings.delay_max.total_seconds()
        if self.listener is None:
            # Without notifications, back off exponentially while nothing arrives.
            timeout = self._idle_delay
            self._idle_delay = min(self._idle_delay * 2, delay_max)
        else:
            timeout = delay_max
        try:
            available = self.store.next_available_at(self.settings.queues)
        except (DatabaseError, InterfaceError):
            return timeout  # the next step meets the outage and reports it
        if available is not None:
            # Host and database clocks may differ a little; this only sets a wake-up time.
            until = (available - timezone.now()).total_seconds()
            timeout = min(timeout, max(until, delay_min))
        return timeout

    # -- outcomes -----------------------------------------------------------------------------

    def _collect(self, outcome: Outcome) -> None:
        """Called by the pool, from any thread, when a task ends."""
        with self._lock:
            if not self._pending:
                self._oldest_pending = time.monotonic()
            self._pending.append(outcome)
        self.wakeup.set()

    def _has_pending(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def _flush(self, *, force: bool = False) -> None:
        with self._lock:
            if not self._pending:
                return
            age = time.monotonic() - self._oldest_pending
            if (
                not force
                and len(self._pending) < FLUSH_BATCH_SIZE
                and age < FLUSH_DELAY.total_seconds()
            ):
                return
            outcomes = self._pending
            self._pending = []
        try:
            written = self.store.finish(worker_id=self.identity.worker_id, outcomes=outcomes)
        except BaseException:
            with self._lock:  # keep them for the next try; they are not lost
                self._pending[:0] = outcomes
            raise
        self._announce(written)

    def _announce(self, written: list[Written]) -> None:
        """Send task_finished for tasks that reached a final state; log scheduled retries."""
        finals = [w for w in written if w.status != TaskResultStatus.READY]
        for item in written:
            if item.status == TaskResultStatus.READY:
                log_retry(item)
        if not finals:
            return
        histories = self._histories([w.outcome.record for w in finals], include_first=True)
        for item in finals:
            record = item.outcome.record
            try:
                task = import_task(record.task_path)
            except ImportError:
                continue  # nothing to build a result from; the attempt is stored
            attempts = histories.get(record.pk, [])
            errors = [e for e in map(error_of, attempts) if e is not None]
            worker_ids = [a.worker_id for a in attempts]
            if not has_history(record):  # no query was needed: the history is this attempt
                errors = [item.outcome.error] if item.outcome.error else []
                worker_ids = [record.worker_id]
            result = make_result(
                record,
                task=task,
                errors=errors,
                worker_ids=worker_ids,
                status=item.status,
                finished_at=item.finished_at,
                return_value=item.outcome.return_value,
            )
            task_finished.send(type(task.get_backend()), task_result=result)

    def _histories(
        self, records: list[TaskRecord], *, include_first: bool = False
    ) -> dict[int, list[Attempt]]:
        """Earlier attempts of retried tasks (first attempts have none: no query)."""
        ids = [r.pk for r in records if has_history(r)]
        if not ids:
            return {}
        found: dict[int, list[Attempt]] = defaultdict(list)
        for attempt in (
            Attempt.objects.using(self.store.using)
            .filter(task_id__in=ids)
            .select_related("error")
            .order_by("id")
        ):
            found[attempt.task_id].append(attempt)
        return found

    # -- stopping and outages -----------------------------------------------------------------

    def _interrupt(self) -> None:
        """Record every running task as interrupted, so its retry policy applies at once."""
        abandoned = self.pool.abandon()
        message = f"Worker {self.identity.worker_id!r} was stopped while the task was running"
        error = error_from_message(WorkerInterrupted, message)
        with self._lock:
            self._pending.extend(
                Outcome(record, TaskResultStatus.FAILED, error=error) for record in abandoned
            )
        for _ in range(3):
            try:
                self._flush(force=True)
            except (DatabaseError, InterfaceError) as exc:
                self._outage(exc)
            else:
                return
        logger.error("Could not record interrupted tasks; recovery will take them back")

    def _shut_down(self, *, clean: bool) -> None:
        if self.listener:
            self.listener.stop()
        self.maintenance.stop()
        if clean:
            self.pool.close()
        self.heartbeat.stop(deregister=clean)
        connections.close_all()
        logger.info("Worker=%s stopped", self.identity.worker_id)

    def _reconcile(self) -> None:
        """After a claim whose reply was lost, hand back what we hold but never received."""
        held = {r.pk for r in self.pool.running()}
        with self._lock:
            held.update(o.record.pk for o in self._pending)
        self.store.release_unheld(worker_id=self.identity.worker_id, held=held)
        self._claim_uncertain = False

    def _back_online(self) -> None:
        if self._outage_since is None:
            return
        logger.warning(
            "Database is back after %.1fs; worker=%s resumes",
            time.monotonic() - self._outage_since,
            self.identity.worker_id,
        )
        self._outage_since = None

    def _outage(self, exc: Exception) -> None:
        """Log the first error of an outage, drop the broken connection, and back off."""
        self.health.failed()
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._outage_attempts = 0
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            logger.error(
                "Database unavailable; worker=%s keeps running and retries: %s",
                self.identity.worker_id,
                first_line,
            )
        with suppress(DatabaseError, InterfaceError):
            connections[self.store.using].close()
        delay = OUTAGE_BACKOFF[min(self._outage_attempts, len(OUTAGE_BACKOFF) - 1)]
        self._outage_attempts += 1
        self.wakeup.wait(delay)


def has_history(record: TaskRecord) -> bool:
    """Whether a claimed task was attempted before: retried by its policy, or by an operator
    (whose retry renews the budget, so attempt_count starts again from zero)."""
    return record.attempt_count > 1 or record.started_at != record.last_attempted_at


def log_retry(item: Written) -> None:
    record, error = item.outcome.record, item.outcome.error
    logger.warning(
        "Task id=%s path=%s attempt=%d failed (%s); retry at %s",
        record.pk,
        record.task_path,
        record.attempt_count,
        error.exception_class_path if error else "?",
        item.available_after.isoformat() if item.available_after else "?",
    )


__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "Worker", "WorkerSettings"]
