"""When this worker last failed to reach its database, as all its threads see it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class DatabaseHealth:
    """Every thread reports its database failures here; recovery asks how long it has been.

    A worker whose loop is busy may not query the database for a while, but its heartbeat
    does, every heartbeat interval: an outage is known to this object within one interval.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # A worker knows nothing of the time before it started: had the database been down
        # just then, every heartbeat would look old. Starting counts as a failure.
        self._last_failure = clock()

    def failed(self) -> None:
        with self._lock:
            self._last_failure = self._clock()

    def quiet_for(self) -> float:
        """Seconds since the last failure, or since the worker started."""
        with self._lock:
            return self._clock() - self._last_failure
