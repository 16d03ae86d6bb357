"""When this worker last failed to reach its database, as all its threads see it."""

from __future__ import annotations

import math
import threading
import time


class DatabaseHealth:
    """Every thread reports its database failures here; recovery asks how long it has been.

    A worker whose loop is busy may not query the database for a while, but its heartbeat
    does, every heartbeat interval: an outage is known to this object within one interval.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_failure = -math.inf

    def failed(self) -> None:
        with self._lock:
            self._last_failure = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last failure (infinite if there was none)."""
        with self._lock:
            return time.monotonic() - self._last_failure
