"""Wake an idle worker when tasks arrive: LISTEN on PostgreSQL, on a connection of its own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import connections

from conveyor.store.postgresql import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

RECONNECT_DELAY_SECONDS = (0.5, 1, 2, 5)


class Listener:
    """Calls `wake` for every notification on the tasks channel; reconnects after failures."""

    def __init__(self, using: str, wake: Callable[[], None]) -> None:
        self.using = using
        self.wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect after a pause
                delay = RECONNECT_DELAY_SECONDS[min(failures, len(RECONNECT_DELAY_SECONDS) - 1)]
                failures += 1
                logger.debug("LISTEN connection failed (%s); reconnecting in %ss", exc, delay)
                # Tasks may have arrived unheard: let the worker look.
                self.wake()
                self._stop.wait(delay)
            finally:
                connections[self.using].close()

    def _listen(self) -> None:
        connection = connections[self.using]
        connection.ensure_connection()
        connection.set_autocommit(True)
        raw = connection.connection
        raw.execute(f"LISTEN {NOTIFY_CHANNEL}")
        self.wake()  # whatever arrived before LISTEN took effect
        while not self._stop.is_set():
            for _ in raw.notifies(timeout=1.0, stop_after=1):
                self.wake()
