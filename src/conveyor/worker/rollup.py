"""The dashboard's rollup: one live worker at a time sums finished tasks per minute.

Every worker's maintenance thread asks every few heartbeats; the one that holds the
backend's rollup lease rolls the completed minutes up (Engine.roll_up), the others skip. A
minute is rolled up only ROLLUP_LAG after it ends: a finish commits a little after the
finished_at it writes (PostgreSQL's clock is the transaction's start), so a younger minute
could still gain rows that the rollup would never see. The dashboard reads those minutes
from the task rows meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from conveyor.store import Engine
from conveyor.worker.leased import LeasedChore

logger = logging.getLogger(__name__)

# With the default 10 s heartbeat, the rollup looks every 30 s.
ROLLUP_EVERY_HEARTBEATS = 3
# How long after a minute ends it is rolled up (see above).
ROLLUP_LAG = timedelta(minutes=1)
# The rolled-up minutes kept: the dashboard's longest window, with a margin.
ROLLUP_KEEP = timedelta(days=2)
# Minutes per transaction: a catch-up of a day is done in short steps.
ROLLUP_BATCH_MINUTES = 60
# Longest a run may keep the maintenance thread from recovery; a backlog continues next tick.
ROLLUP_RUN_BUDGET = timedelta(seconds=2)


class Rollup(LeasedChore):
    """Rolls finished tasks up into per-minute counts while this worker holds the lease."""

    def __init__(self, store: Engine, worker_id: str, *, stopping: threading.Event) -> None:
        super().__init__(
            store,
            worker_id,
            stopping=stopping,
            name="rollup",
            every_heartbeats=ROLLUP_EVERY_HEARTBEATS,
            budget=ROLLUP_RUN_BUDGET,
        )

    def run_if_due(self) -> int | None:
        """Run when due: at once while a backlog remains, else every interval."""
        if not self.due():
            return None
        rolled, complete = self.run()
        self.ran(backlog=not complete)
        return rolled

    def run(self) -> tuple[int, bool]:
        """Take the lease and roll minutes up until done, out of budget, or stopping; return
        how many minutes, and whether none is left."""
        if not self.lease.take():
            return 0, True
        deadline = self.deadline()
        rolled = 0
        while not self.stopping.is_set() and time.monotonic() < deadline:
            minutes = self.store.roll_up(
                lag=ROLLUP_LAG, keep=ROLLUP_KEEP, limit=ROLLUP_BATCH_MINUTES
            )
            rolled += minutes
            if minutes < ROLLUP_BATCH_MINUTES:
                return rolled, True
            if not self.lease.renew():
                break
        logger.debug(
            "Rollup paused with a backlog backend=%s rolled=%d", self.store.backend_name, rolled
        )
        return rolled, False
