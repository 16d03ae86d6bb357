"""Outcomes of ended attempts, gathered from the execution threads and written in batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from conveyor.store import Outcome

# A batch is written once it is this old or this large, whichever comes first: a short delay
# lets the outcomes of tasks ending together share one write.
FLUSH_DELAY = timedelta(milliseconds=5)
FLUSH_BATCH_SIZE = 200


class OutcomeBuffer:
    """Thread-safe: any thread adds, the worker loop takes whole batches."""

    def __init__(
        self,
        *,
        on_added: Callable[[], None],
        batch_size: int = FLUSH_BATCH_SIZE,
        delay: timedelta = FLUSH_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_added = on_added
        self.batch_size = batch_size
        self.delay = delay.total_seconds()
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: list[Outcome] = []
        self._oldest = 0.0

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            if not self._pending:
                self._oldest = self.clock()
            self._pending.append(outcome)
        self.on_added()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def held_ids(self) -> set[int]:
        """Ids of the tasks whose outcomes wait here (their rows are still RUNNING)."""
        with self._lock:
            return {outcome.record.pk for outcome in self._pending}

    def take(self, *, force: bool = False) -> list[Outcome]:
        """The whole batch when it is due (full, old enough, or forced); else nothing."""
        with self._lock:
            if not self._pending:
                return []
            full = len(self._pending) >= self.batch_size
            if not (force or full or self.clock() - self._oldest >= self.delay):
                return []
            taken, self._pending = self._pending, []
            return taken

    def put_back(self, outcomes: list[Outcome]) -> None:
        """Return a batch that could not be written, ahead of what came since."""
        with self._lock:
            if not self._pending:
                self._oldest = self.clock()
            self._pending[:0] = outcomes
