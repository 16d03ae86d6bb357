"""The worker's row in the registry, kept fresh by a thread that beats while tasks run."""

from __future__ import annotations

import logging
import os
import threading
from functools import partial

from django.db import DatabaseError, connections

from conveyor.models import WorkerRecord
from conveyor.store import TaskStore
from conveyor.store.base import WorkerIdInUse
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.identity import Identity

logger = logging.getLogger(__name__)


class Heartbeat:
    """Registers the worker, beats every heartbeat_interval, and deregisters on a clean exit."""

    def __init__(
        self, store: TaskStore, identity: Identity, queues: list[str], health: DatabaseHealth
    ) -> None:
        self.store = store
        self.health = health
        self.identity = identity
        self.queues = queues
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-heartbeat", daemon=True)

    def start(self) -> None:
        self._register()
        self._thread.start()

    def stop(self, *, deregister: bool) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if deregister:
            try:
                self.store.deregister_worker(self.identity.worker_id)
            except DatabaseError as exc:
                logger.warning("Could not deregister worker=%s: %s", self.identity.worker_id, exc)

    def _register(self) -> None:
        identity = self.identity
        register = partial(
            self.store.register_worker,
            worker_id=identity.worker_id,
            host=identity.host,
            pid=identity.pid,
            queues=self.queues,
        )
        try:
            register()
        except WorkerIdInUse:
            # A process on this host that no longer exists cannot be the live owner: it died
            # within worker_timeout (a restart after a crash, a supervisor's replacement).
            owner = (
                WorkerRecord.objects.using(self.store.using)
                .filter(worker_id=identity.worker_id)
                .values_list("host", "pid")
                .first()
            )
            if owner is None or owner[0] != identity.host or process_exists(owner[1]):
                raise
            logger.warning("Worker id=%s taken over from dead pid=%s", identity.worker_id, owner[1])
            register(take_over=True)

    def _run(self) -> None:
        interval = self.store.options.heartbeat_interval.total_seconds()
        try:
            while not self._stop.wait(interval):
                self.beat()
        finally:
            connections.close_all()

    def beat(self) -> None:
        try:
            if not self.store.heartbeat(self.identity.worker_id):
                logger.warning(
                    "Worker=%s was declared dead by another worker; registering again",
                    self.identity.worker_id,
                )
                self._register()
        except DatabaseError as exc:
            # The worker loop reports outages; a heartbeat just tries again next time.
            self.health.failed()
            logger.debug("Heartbeat failed worker=%s: %s", self.identity.worker_id, exc)
            connections.close_all()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True
