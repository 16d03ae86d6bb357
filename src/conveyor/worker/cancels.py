"""Cancel requests of the tasks this worker runs: read every heartbeat interval, and at once
when the database tells (PostgreSQL's NOTIFY, through a Listener); each is handed to the
execution pool, which stops the task. Also reports the pool's stuck threads to the registry."""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError

from conveyor.store import Engine
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.pool import ExecutionPool
from conveyor.worker.service import BackgroundThread

logger = logging.getLogger(__name__)


class CancelWatch(BackgroundThread):
    """Looks for cancel requests every heartbeat interval, and whenever check_now() is
    called; reads nothing while the pool is idle."""

    thread_name = "conveyor-cancels"

    def __init__(
        self, store: Engine, worker_id: str, pool: ExecutionPool, health: DatabaseHealth
    ) -> None:
        super().__init__()
        self.store = store
        self.worker_id = worker_id
        self.pool = pool
        self.health = health
        self._check = threading.Event()
        self._reported_stuck = 0

    def check_now(self) -> None:
        """Look for cancel requests now (a notification arrived)."""
        self._check.set()

    def stop(self) -> None:
        self.stopping.set()
        self._check.set()
        super().stop()

    def run(self) -> None:
        interval = self.store.options.heartbeat_interval.total_seconds()
        while not self.stopping.is_set():
            self._check.wait(interval)
            self._check.clear()
            if not self.stopping.is_set():
                self.run_once()

    def run_once(self) -> None:
        try:
            self.report_stuck()
            if self.pool.idle():
                return
            for pk, requested_by in self.store.cancel_requests(self.worker_id).items():
                self.pool.cancel(pk, requested_by)
        except DatabaseError as exc:
            self.health.failed()
            logger.debug("Reading cancel requests failed, will try again: %s", exc)
            self.store.reset_connection()

    def report_stuck(self) -> None:
        stuck = len(self.pool.stuck())
        if stuck != self._reported_stuck:
            self.store.report_stuck(self.worker_id, stuck)
            self._reported_stuck = stuck
