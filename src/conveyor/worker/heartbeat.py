"""The worker's row in the registry, kept fresh by a thread that beats while tasks run; the
same thread looks for cancel requests of the running tasks (see cancels.py)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from functools import partial

from django.db import DatabaseError, InterfaceError

from conveyor.exceptions import WorkerIdInUse
from conveyor.store import Engine, QueueFilter
from conveyor.worker.cancels import CancelWatch
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.identity import Identity
from conveyor.worker.service import BackgroundThread

logger = logging.getLogger(__name__)


class Heartbeat(BackgroundThread):
    """Registers the worker, beats every heartbeat_interval, and deregisters on a clean exit."""

    thread_name = "conveyor-heartbeat"

    def __init__(
        self,
        store: Engine,
        identity: Identity,
        queues: QueueFilter,
        health: DatabaseHealth,
        *,
        cancels: CancelWatch | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.health = health
        self.identity = identity
        self.queues = queues
        self.cancels = cancels
        self._look_now = threading.Event()

    def look_now(self) -> None:
        """Look for cancel requests now, not at the next beat (a notification arrived)."""
        self._look_now.set()

    def start(self) -> None:
        """Register (raising if the database cannot be reached), then start beating."""
        self._register()
        super().start()

    def stop(self, *, deregister: bool = False) -> None:
        self.stopping.set()
        self._look_now.set()  # ends the wait at once
        super().stop()
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
            owner = self.store.worker(identity.worker_id)
            if owner is None or owner.host != identity.host or process_exists(owner.pid):
                raise
            logger.warning(
                "Worker id=%s taken over from dead pid=%s", identity.worker_id, owner.pid
            )
            register(take_over=True)

    def run(self) -> None:
        interval = self.store.options.heartbeat_interval.total_seconds()
        next_beat = time.monotonic() + interval
        while True:
            self._look_now.wait(max(next_beat - time.monotonic(), 0))
            self._look_now.clear()
            if self.stopping.is_set():
                return
            if time.monotonic() >= next_beat:
                self.beat()
                next_beat = time.monotonic() + interval
            self.look()

    def look(self) -> None:
        if self.cancels is not None:
            self._guarded("Reading cancel requests", self.cancels.look)

    def beat(self) -> None:
        self._guarded("Heartbeat", self._beat)

    def _beat(self) -> None:
        if not self.store.heartbeat(self.identity.worker_id):
            logger.warning(
                "Worker=%s was declared dead by another worker; registering again",
                self.identity.worker_id,
            )
            self._register()

    def _guarded(self, what: str, step: Callable[[], None]) -> None:
        """Run one step of the thread; whatever it raises is logged and the next runs."""
        try:
            step()
        except (DatabaseError, InterfaceError) as exc:
            # The worker loop reports outages; this thread just tries again next time.
            self.health.failed()
            logger.debug("%s failed worker=%s: %s", what, self.identity.worker_id, exc)
            self.store.reset_connection()
        except Exception:
            # Not an outage (another live worker took the id, a bug): said loudly, and the
            # thread goes on, since once it ended other workers would declare this one
            # dead while its tasks run.
            logger.exception("%s failed worker=%s, will try again", what, self.identity.worker_id)
            self.store.reset_connection()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True
