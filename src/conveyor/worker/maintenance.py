"""Periodic upkeep that any live worker does: taking back tasks of lost workers, retention,
and the dashboard's rollup."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from django.db import InterfaceError, OperationalError

from conveyor.store import Engine, Written
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.retention import Retention
from conveyor.worker.rollup import Rollup
from conveyor.worker.service import BackgroundThread

logger = logging.getLogger(__name__)


class Maintenance(BackgroundThread):
    """Runs recovery (and, when due, the rollup and retention) at start-up and then about
    every heartbeat interval, in its own thread."""

    thread_name = "conveyor-maintenance"

    def __init__(
        self,
        store: Engine,
        worker_id: str,
        *,
        on_written: Callable[[list[Written]], None],
        health: DatabaseHealth,
    ) -> None:
        super().__init__()
        self.store = store
        self.worker_id = worker_id
        self.on_written = on_written
        self.health = health
        self.retention = Retention(store, worker_id, stopping=self.stopping)
        self.rollup = Rollup(store, worker_id, stopping=self.stopping)

    def run(self) -> None:
        interval = self.store.options.heartbeat_interval.total_seconds()
        while True:
            self.run_once()
            # Jitter spreads the work of many workers started together.
            if self.stopping.wait(interval * random.uniform(0.75, 1.25)):
                return

    def run_once(self) -> None:
        try:
            self.recover()
            # Slots freed by a writer that died between its two transactions, or by purged
            # tasks, go to the tasks waiting for them.
            self.store.promote(self.store.waiting_keys())
            # Before retention: a minute is summed before its tasks can be purged.
            self.rollup.run_if_due()
            self.retention.run_if_due()
        except (OperationalError, InterfaceError) as exc:
            # The database may be out of reach: recovery waits until it has been reached
            # without a failure for a whole worker_timeout (see recover()).
            self.health.failed()
            logger.debug("Maintenance failed, will try again: %s", exc)
            self.store.reset_connection()
        except Exception:
            # Not an outage (a schema that lags the code, a bug): said loudly, and it does
            # not end the thread, nor hold up the next recovery, which would otherwise never
            # run again.
            logger.exception("Maintenance failed, will try again")
            self.store.reset_connection()

    def recover(self) -> None:
        # During and after an outage every worker's heartbeat looks old: judge others only
        # once this worker has been up, reaching the database without a failure, for a full
        # worker_timeout; any worker alive meanwhile has beaten by then.
        if self.health.quiet_for() < self.store.options.worker_timeout.total_seconds():
            return
        written = self.store.recover_lost(recovered_by=self.worker_id)
        if written:
            self.on_written(written)
