"""Automatic retention: one live worker at a time deletes old results, in small batches.

Enabled by OPTIONS["purge"]["automatic"]. Every worker's maintenance thread asks now and
then; the one that holds the backend's retention lease purges, the others skip. The lease
is renewed before every batch and judged on the database clock, so a holder that dies or
stalls lets another worker take over once it expires.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from conveyor.store import Engine

logger = logging.getLogger(__name__)

# With the default 10 s heartbeat, retention looks once a minute.
RETENTION_EVERY_HEARTBEATS = 6
# Rows per DELETE: short transactions that never hold claims up for long.
RETENTION_BATCH_SIZE = 200
# Longest a run may keep the maintenance thread from recovery; a backlog continues next tick.
RETENTION_RUN_BUDGET = timedelta(seconds=2)
# Shortest pause between batches; a slow batch is followed by an equally long pause.
RETENTION_PAUSE_MIN = timedelta(milliseconds=10)


class NamedLease:
    """One named lease held by `holder`, taken and renewed through the store."""

    def __init__(self, store: Engine, name: str, holder: str, duration: timedelta) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.duration = duration

    def take(self) -> bool:
        """Take the lease if it is free, expired or already ours; report whether we hold it."""
        return self.store.take_lease(self.name, holder=self.holder, duration=self.duration)

    def renew(self) -> bool:
        """Extend the lease if we still hold it and it has not expired."""
        return self.store.renew_lease(self.name, holder=self.holder, duration=self.duration)


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """What one run did: whether it held the lease, what it deleted, and whether it is done."""

    leased: bool
    finished: int = 0
    unfinished: int = 0
    complete: bool = True

    @property
    def deleted(self) -> int:
        return self.finished + self.unfinished


class Retention:
    """Deletes results older than OPTIONS["purge"] cut-offs while this worker holds the lease."""

    def __init__(
        self,
        store: Engine,
        worker_id: str,
        *,
        stopping: threading.Event,
        batch_size: int = RETENTION_BATCH_SIZE,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.stopping = stopping
        self.batch_size = batch_size
        options = store.options
        self.interval = options.heartbeat_interval * RETENTION_EVERY_HEARTBEATS
        self.budget = min(RETENTION_RUN_BUDGET, options.heartbeat_interval / 2)
        self.lease = NamedLease(
            store,
            f"retention:{store.backend_name}",
            worker_id,
            # Outlives the gap between the holder's runs, so a live holder keeps it.
            options.worker_timeout + self.interval,
        )
        self._next_run = 0.0

    @property
    def enabled(self) -> bool:
        return self.store.options.purge.automatic

    def run_if_due(self) -> RetentionRun | None:
        """Run when enabled and due: at once while a backlog remains, else every interval."""
        if not self.enabled or time.monotonic() < self._next_run:
            return None
        run = self.run()
        wait = 0.0 if run.leased and not run.complete else self.interval.total_seconds()
        self._next_run = time.monotonic() + wait
        return run

    def run(self) -> RetentionRun:
        """Take the lease and purge in batches until done, out of budget, or stopping."""
        if not self.lease.take():
            return RetentionRun(leased=False)
        deadline = time.monotonic() + self.budget.total_seconds()
        purge = self.store.options.purge
        counts = {True: 0, False: 0}
        complete = True
        for finished, older_than in ((True, purge.finished), (False, purge.unfinished)):
            if older_than is None:
                continue
            deleted, done = self._purge(finished=finished, older_than=older_than, until=deadline)
            counts[finished] += deleted
            if not done:
                complete = False
                break
        run = RetentionRun(True, counts[True], counts[False], complete)
        if run.deleted:
            logger.info(
                "Retention purged finished=%d unfinished=%d backend=%s worker=%s complete=%s",
                run.finished,
                run.unfinished,
                self.store.backend_name,
                self.worker_id,
                run.complete,
            )
        return run

    def _purge(self, *, finished: bool, older_than: timedelta, until: float) -> tuple[int, bool]:
        """Delete batch after batch; return how many, and whether nothing purgeable is left."""
        deleted = 0
        while True:
            if self.stopping.is_set() or time.monotonic() >= until or not self.lease.renew():
                return deleted, False
            started = time.monotonic()
            count = self.store.purge(
                finished=finished,
                older_than=older_than,
                limit=self.batch_size,
                batch_size=self.batch_size,
            )
            deleted += count
            if count < self.batch_size:
                return deleted, True
            # Leave the database to the workers for as long as the batch took.
            pause = max(time.monotonic() - started, RETENTION_PAUSE_MIN.total_seconds())
            self.stopping.wait(pause)
