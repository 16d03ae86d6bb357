"""PostgreSQL's wake-up source: LISTEN on the channel that conveyor_task's trigger notifies."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections

# The channel the conveyor_task insert trigger notifies (see migration 0002).
NOTIFY_CHANNEL = "conveyor_tasks"
# The channel pause and resume notify: the paused set of queues changed.
QUEUES_CHANNEL = "conveyor_queues"
# How often a listener looks up from waiting to see whether it should stop.
POLL_SECONDS = 1.0


class PostgreSQLNotifications:
    """LISTEN on this thread's own connection to the database alias."""

    def __init__(self, using: str, *, on_queues_changed: Callable[[], None]) -> None:
        self.using = using
        self.on_queues_changed = on_queues_changed

    def listen(self, wake: Callable[[], None], stopping: threading.Event) -> None:
        connection = connections[self.using]
        try:
            connection.ensure_connection()
            connection.set_autocommit(True)
            raw = connection.connection
            raw.execute(f"LISTEN {NOTIFY_CHANNEL}")
            raw.execute(f"LISTEN {QUEUES_CHANNEL}")
            wake()  # whatever arrived before LISTEN took effect
            while not stopping.is_set():
                for notification in raw.notifies(timeout=POLL_SECONDS, stop_after=1):
                    if notification.channel == QUEUES_CHANNEL:
                        self.on_queues_changed()
                    wake()
        finally:
            connection.close()
