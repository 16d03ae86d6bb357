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
from conveyor.worker.leased import LeasedChore

logger = logging.getLogger(__name__)

# With the default 10 s heartbeat, retention looks once a minute.
RETENTION_EVERY_HEARTBEATS = 6
# Rows per DELETE: short transactions that never hold claims up for long.
RETENTION_BATCH_SIZE = 200
# Longest a run may keep the maintenance thread from recovery; a backlog continues next tick.
RETENTION_RUN_BUDGET = timedelta(seconds=2)
# Shortest pause between batches; a slow batch is followed by an equally long pause.
RETENTION_PAUSE_MIN = timedelta(milliseconds=10)


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


class Retention(LeasedChore):
    """Deletes results older than OPTIONS["purge"] cut-offs while this worker holds the lease."""

    def __init__(
        self,
        store: Engine,
        worker_id: str,
        *,
        stopping: threading.Event,
        batch_size: int = RETENTION_BATCH_SIZE,
    ) -> None:
        super().__init__(
            store,
            worker_id,
            stopping=stopping,
            name="retention",
            every_heartbeats=RETENTION_EVERY_HEARTBEATS,
            budget=RETENTION_RUN_BUDGET,
        )
        self.batch_size = batch_size

    @property
    def enabled(self) -> bool:
        return self.store.options.purge.automatic

    def run_if_due(self) -> RetentionRun | None:
        """Run when enabled and due: at once while a backlog remains, else every interval."""
        if not self.enabled or not self.due():
            return None
        run = self.run()
        self.ran(backlog=run.leased and not run.complete)
        return run

    def run(self) -> RetentionRun:
        """Take the lease and purge in batches until done, out of budget, or stopping."""
        if not self.lease.take():
            return RetentionRun(leased=False)
        deadline = self.deadline()
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
