"""The one lifecycle of the worker's background threads (heartbeat, maintenance, listener):
start, then stop, which joins the thread; the thread closes its own connections as it ends."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import ClassVar

from django.db import connections

logger = logging.getLogger(__name__)

# A thread that does not end within this after stop() is left behind (it is a daemon).
JOIN_TIMEOUT = timedelta(seconds=10)


class BackgroundThread:
    """A named daemon thread that runs `run()` until `stopping` is set."""

    thread_name: ClassVar[str] = "conveyor"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and wait for it to end."""
        self.stopping.set()
        if self._thread is None:
            return
        self._thread.join(timeout=JOIN_TIMEOUT.total_seconds())
        if self._thread.is_alive():
            logger.warning("Thread %s did not stop within %s", self.thread_name, JOIN_TIMEOUT)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """The thread's work; return once `stopping` is set."""
        raise NotImplementedError

    def _main(self) -> None:
        try:
            self.run()
        finally:
            # Django's connections are per thread; nobody else can close this thread's.
            connections.close_all()
