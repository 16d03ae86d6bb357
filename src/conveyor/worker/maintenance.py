"""Periodic upkeep that any live worker does: taking back tasks of lost workers, and retention."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from django.db import DatabaseError, connections

from conveyor.store import TaskStore, Written
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.retention import Retention

logger = logging.getLogger(__name__)


class Maintenance:
    """Runs recovery (and, when due, retention) at start-up and then about every heartbeat
    interval, in its own thread."""

    def __init__(
        self,
        store: TaskStore,
        worker_id: str,
        *,
        on_written: Callable[[list[Written]], None],
        health: DatabaseHealth,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.on_written = on_written
        self.health = health
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-maintenance", daemon=True)
        self.retention = Retention(store, worker_id, stopping=self._stop)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        interval = self.store.options.heartbeat_interval.total_seconds()
        try:
            while True:
                self.run_once()
                # Jitter spreads the work of many workers started together.
                if self._stop.wait(interval * random.uniform(0.75, 1.25)):
                    return
        finally:
            connections.close_all()

    def run_once(self) -> None:
        try:
            self.recover()
            self.retention.run_if_due()
        except DatabaseError as exc:
            self.health.failed()
            logger.debug("Maintenance failed, will try again: %s", exc)
            connections.close_all()

    def recover(self) -> None:
        # During and after an outage every worker's heartbeat looks old: judge others only
        # once this worker has been up, reaching the database without a failure, for a full
        # worker_timeout; any worker alive meanwhile has beaten by then.
        if self.health.quiet_for() < self.store.options.worker_timeout.total_seconds():
            return
        written = self.store.recover_lost(recovered_by=self.worker_id)
        if written:
            self.on_written(written)
