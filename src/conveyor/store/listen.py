"""PostgreSQL's wake-up sources: LISTEN on the channel that conveyor_task's trigger notifies,
and on the one that a cancel request notifies."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections

# The channel the conveyor_task insert trigger notifies (see migration 0002).
NOTIFY_CHANNEL = "conveyor_tasks"
# The channel pause and resume notify: the paused set of queues changed.
QUEUES_CHANNEL = "conveyor_queues"
# The channel a cancel request of a running task notifies (Engine.request_cancel).
CANCEL_CHANNEL = "conveyor_cancel"
# How often a listener looks up from waiting to see whether it should stop.
POLL_SECONDS = 1.0


class PostgreSQLNotifications:
    """LISTEN on this thread's own connection to the database alias."""

    def __init__(
        self,
        using: str,
        channel: str = NOTIFY_CHANNEL,
        *,
        on_queues_changed: Callable[[], None] | None = None,
    ) -> None:
        self.using = using
        self.channel = channel
        self.on_queues_changed = on_queues_changed

    def listen(self, wake: Callable[[], None], stopping: threading.Event) -> None:
        connection = connections[self.using]
        try:
            connection.ensure_connection()
            connection.set_autocommit(True)
            raw = connection.connection
            raw.execute(f"LISTEN {self.channel}")
            if self.on_queues_changed is not None:
                raw.execute(f"LISTEN {QUEUES_CHANNEL}")
            wake()  # whatever arrived before LISTEN took effect
            while not stopping.is_set():
                for notification in raw.notifies(timeout=POLL_SECONDS, stop_after=1):
                    if notification.channel == QUEUES_CHANNEL and self.on_queues_changed:
                        self.on_queues_changed()
                    wake()
        finally:
            connection.close()
