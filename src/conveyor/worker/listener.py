"""Wake an idle worker when tasks arrive, from the store's wake-up source, in a thread."""

from __future__ import annotations

import logging
from collections.abc import Callable

from conveyor.backoff import Backoff
from conveyor.store import WakeupSource
from conveyor.worker.service import BackgroundThread

logger = logging.getLogger(__name__)

RECONNECT_BACKOFF = Backoff((0.5, 1.0, 2.0, 5.0))


class Listener(BackgroundThread):
    """Calls `wake` for every notification of the source; reconnects after failures."""

    thread_name = "conveyor-listener"

    def __init__(self, source: WakeupSource, wake: Callable[[], None]) -> None:
        super().__init__()
        self.source = source
        self.wake = wake

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                self.source.listen(self.wake, self.stopping)
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect after a pause
                delay = RECONNECT_BACKOFF.delay(failures)
                failures += 1
                logger.debug("Wake-up source failed (%s); reconnecting in %ss", exc, delay)
                self.wake()  # tasks may have arrived unheard: let the worker look
                self.stopping.wait(delay)


class CancelListener(Listener):
    """A Listener on the store's cancel source: calls `wake` when a cancel is requested."""

    thread_name = "conveyor-cancel-listener"
