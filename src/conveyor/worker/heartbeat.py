"""The worker's row in the registry, kept fresh by a thread that beats while tasks run."""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connections

from conveyor.store import TaskStore
from conveyor.worker.identity import Identity

logger = logging.getLogger(__name__)


class Heartbeat:
    """Registers the worker, beats every heartbeat_interval, and deregisters on a clean exit."""

    def __init__(self, store: TaskStore, identity: Identity, queues: list[str]) -> None:
        self.store = store
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
        self.store.register_worker(
            worker_id=self.identity.worker_id,
            host=self.identity.host,
            pid=self.identity.pid,
            queues=self.queues,
        )

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
            logger.debug("Heartbeat failed worker=%s: %s", self.identity.worker_id, exc)
            connections.close_all()
