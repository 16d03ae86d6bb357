"""Cancel requests of the tasks this worker runs, read by the heartbeat thread every beat and
at once when the database tells (PostgreSQL's NOTIFY, through a CancelListener); each is
handed to the execution pool, which stops the task. Also reports the pool's stuck threads
to the registry when their number changes."""

from __future__ import annotations

import logging

from conveyor.store import Engine
from conveyor.worker.pool import ExecutionPool

logger = logging.getLogger(__name__)


class CancelWatch:
    """One look at the cancel requests (none while the pool is idle) and the stuck threads."""

    def __init__(self, store: Engine, worker_id: str, pool: ExecutionPool) -> None:
        self.store = store
        self.worker_id = worker_id
        self.pool = pool
        self._reported_stuck = 0

    def look(self) -> None:
        """Raise the database's error to the caller (the heartbeat, which reports it)."""
        self.report_stuck()
        if self.pool.idle():
            return
        for pk, requested_by in self.store.cancel_requests(self.worker_id).items():
            self.pool.cancel(pk, requested_by)

    def report_stuck(self) -> None:
        stuck = len(self.pool.stuck())
        if stuck != self._reported_stuck:
            self.store.report_stuck(self.worker_id, stuck)
            self._reported_stuck = stuck
