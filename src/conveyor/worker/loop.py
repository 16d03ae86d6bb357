"""The worker loop: claim into free slots, flush finished attempts, sleep until there is work.

The loop owns the main thread's database connection. Tasks run in the ExecutionPool; their
outcomes gather in the OutcomeBuffer and are written in batches, with the next claim when
one is due then (Engine.finish_and_claim), else by `flush`. The parts are
built by conveyor.worker.build and handed in, so that each can be replaced in a test.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, InterfaceError
from django.utils import timezone

from conveyor.backoff import Backoff
from conveyor.compat import TaskResultStatus
from conveyor.exceptions import WorkerInterrupted
from conveyor.failures import error_from_message, first_line
from conveyor.results import has_history
from conveyor.store import Engine, Outcome, QueueFilter
from conveyor.worker.announce import Announcer
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.identity import Identity
from conveyor.worker.listener import Listener
from conveyor.worker.maintenance import Maintenance
from conveyor.worker.outcomes import OutcomeBuffer
from conveyor.worker.pool import ASYNC_CONCURRENCY, ExecutionPool
from conveyor.worker.scheduler import Scheduler
from conveyor.worker.service import BackgroundThread

logger = logging.getLogger(__name__)

OUTAGE_BACKOFF = Backoff((0.1, 0.25, 0.5, 1.0, 2.0, 5.0))
# A hard stop tries this often to record the interrupted tasks before leaving them to recovery.
INTERRUPT_WRITE_TRIES = 3

EXIT_OK = 0
EXIT_INTERRUPTED = 1


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    queues: QueueFilter
    concurrency: int = 1
    async_concurrency: int = ASYNC_CONCURRENCY
    delay_min: timedelta = timedelta(milliseconds=50)
    delay_max: timedelta = timedelta(seconds=1)
    oneshot: bool = False
    shutdown_timeout: timedelta = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class WorkerParts:
    """What a worker is made of (see conveyor.worker.build.build_worker)."""

    store: Engine
    identity: Identity
    wakeup: threading.Event
    health: DatabaseHealth
    pool: ExecutionPool
    outcomes: OutcomeBuffer
    announcer: Announcer
    heartbeat: Heartbeat
    maintenance: Maintenance
    listener: Listener | None
    scheduler: Scheduler | None = None
    cancel_listener: Listener | None = None
    outage_backoff: Backoff = OUTAGE_BACKOFF


class Worker:
    """Runs the tasks of one backend until stopped; see run()."""

    def __init__(self, parts: WorkerParts, settings: WorkerSettings) -> None:
        self.parts = parts
        self.store = parts.store
        self.identity = parts.identity
        self.wakeup = parts.wakeup
        self.pool = parts.pool
        self.outcomes = parts.outcomes
        self.settings = settings
        self._stopping_at: float | None = None
        self._hard_stop = False
        self._idle_delay = settings.delay_min.total_seconds()
        self._outage_since: float | None = None
        self._outage_failures = 0
        self._claim_uncertain = False
        self._next_deadline: float | None = None

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
        self.parts.maintenance.start()
        for thread in self._background():
            thread.start()
        logger.info(
            "Worker=%s started backend=%s queues=%s concurrency=%d async_concurrency=%d",
            self.identity.worker_id,
            self.store.backend_name,
            ",".join(self.settings.queues.served()) or "*",
            self.settings.concurrency,
            self.settings.async_concurrency,
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
                self.parts.heartbeat.start()
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
                self.interrupt()
                return EXIT_INTERRUPTED
            try:
                claimed = self.step()
            except (DatabaseError, InterfaceError) as exc:
                self._outage(exc)
                continue
            self._back_online()
            idle = self.pool.idle() and not self.outcomes
            if idle and (self._stopping_at is not None or (self.settings.oneshot and claimed == 0)):
                return EXIT_OK
            timeout = self._timeout(claimed)
            if timeout > 0:
                self.wakeup.wait(timeout)

    def step(self) -> int | None:
        """Claim into free slots and flush what is due; return how many tasks were claimed
        (None when no slot was free or the worker is stopping)."""
        if self._claim_uncertain:
            self._reconcile()
        self._next_deadline = self.pool.expire()
        if self._stopping_at is not None:
            self.flush(force=True)
            return None
        # As many as both kinds of slots leave free: whatever is claimed starts at once.
        free = self.pool.free()
        if free <= 0:
            self.flush()
            return None
        # A batch that is due is written with the claim, in one round trip where the
        # database allows it.
        claimed = self._claim(free, self.outcomes.take())
        if claimed < free and self.outcomes:
            # The queue ran dry: nothing will join the batch, so write it now, and look
            # again in the same trip: a retry it schedules at once is due right away.
            claimed += self._claim(self.pool.free(), self.outcomes.take(force=True))
        return claimed

    def _claim(self, limit: int, outcomes: list[Outcome]) -> int:
        self._claim_uncertain = True  # until the reply arrives, we may hold unknown rows
        try:
            written, records = self.store.finish_and_claim(
                worker_id=self.identity.worker_id,
                outcomes=outcomes,
                queues=self.settings.queues,
                limit=limit,
            )
        except BaseException:
            self.outcomes.put_back(outcomes)  # kept for the next try; they are not lost
            raise
        self._claim_uncertain = False
        self.parts.announcer.announce(written)
        histories = self.store.histories(r.pk for r in records if has_history(r))
        for record in records:
            self.pool.submit(record, histories.get(record.pk, []))
        return len(records)

    def _timeout(self, claimed: int | None) -> float:
        """How long to wait for a wake-up before the next step (at most until the next
        task's deadline)."""
        timeout = self._wait(claimed)
        if self._next_deadline is not None:
            return min(timeout, self._next_deadline)
        return timeout

    def _wait(self, claimed: int | None) -> float:
        if claimed and self.pool.free() > 0:
            self._idle_delay = self.settings.delay_min.total_seconds()
            return 0.0  # the batch was full: more may be due, claim again at once
        if self.outcomes:
            return self.outcomes.delay
        if claimed == 0:
            return self.idle_timeout()
        return self.settings.delay_max.total_seconds()  # busy: a finished task wakes us

    def idle_timeout(self) -> float:
        """How long an idle worker sleeps: until the next known due time, within the bounds."""
        delay_min = self.settings.delay_min.total_seconds()
        delay_max = self.settings.delay_max.total_seconds()
        if self.parts.listener is None:
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
        logger.debug("Worker=%s idle; looks again in %.3fs", self.identity.worker_id, timeout)
        return timeout

    def flush(self, *, force: bool = False) -> None:
        """Write the buffered outcomes when the batch is due (or forced), then announce."""
        outcomes = self.outcomes.take(force=force)
        if not outcomes:
            return
        try:
            written = self.store.finish(worker_id=self.identity.worker_id, outcomes=outcomes)
        except BaseException:
            self.outcomes.put_back(outcomes)  # kept for the next try; they are not lost
            raise
        self.parts.announcer.announce(written)

    # -- stopping and outages -----------------------------------------------------------------

    def interrupt(self) -> None:
        """Record every running task as interrupted, so its retry policy applies at once."""
        message = f"Worker {self.identity.worker_id!r} was stopped while the task was running"
        error = error_from_message(WorkerInterrupted, message)
        for record in self.pool.abandon():
            exception = WorkerInterrupted(message)
            self.outcomes.add(
                Outcome(record, TaskResultStatus.FAILED, error=error, exception=exception)
            )
        for _ in range(INTERRUPT_WRITE_TRIES):
            try:
                self.flush(force=True)
            except (DatabaseError, InterfaceError) as exc:
                self._outage(exc)
            else:
                return
        logger.error("Could not record interrupted tasks; recovery will take them back")

    def _background(self) -> list[BackgroundThread]:
        """The optional background threads: the scheduler and the listeners."""
        parts = self.parts
        found: list[BackgroundThread | None] = [
            parts.scheduler,
            parts.listener,
            parts.cancel_listener,
        ]
        return [thread for thread in found if thread is not None]

    def _shut_down(self, *, clean: bool) -> None:
        for thread in self._background():
            thread.stop()
        self.parts.maintenance.stop()
        if clean:
            self.pool.close()
        self.parts.heartbeat.stop(deregister=clean)
        self.store.reset_connection()
        logger.info("Worker=%s stopped", self.identity.worker_id)

    def _reconcile(self) -> None:
        """After a claim whose reply was lost, hand back what we hold but never received."""
        held = {r.pk for r in self.pool.running()} | self.outcomes.held_ids()
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
        self.parts.health.failed()
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._outage_failures = 0
            logger.error(
                "Database unavailable; worker=%s keeps running and retries: %s",
                self.identity.worker_id,
                first_line(exc),
            )
        self.store.reset_connection()
        delay = self.parts.outage_backoff.delay(self._outage_failures)
        self._outage_failures += 1
        self.wakeup.wait(delay)


__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "Worker", "WorkerParts", "WorkerSettings"]
