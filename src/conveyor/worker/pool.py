"""Execution slots of one worker: sync tasks on threads, coroutine tasks on one event loop."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence

from django.db import connections

from conveyor.models import Attempt, TaskRecord
from conveyor.store import Outcome
from conveyor.worker.runner import is_async, run_async, run_sync

logger = logging.getLogger(__name__)

Job = tuple[TaskRecord, Sequence[Attempt]]


class ExecutionPool:
    """Runs up to `concurrency` tasks at once and hands each Outcome to `on_outcome`.

    Each thread keeps its own database connections (Django's are per thread) and closes
    them when the pool closes.
    """

    def __init__(self, concurrency: int, on_outcome: Callable[[Outcome], None]) -> None:
        self.concurrency = concurrency
        self._on_outcome = on_outcome
        self._lock = threading.Lock()
        self._running: dict[int, TaskRecord] = {}
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def free(self) -> int:
        with self._lock:
            return self.concurrency - len(self._running)

    def running(self) -> list[TaskRecord]:
        with self._lock:
            return list(self._running.values())

    def idle(self) -> bool:
        with self._lock:
            return not self._running

    def submit(self, record: TaskRecord, history: Sequence[Attempt]) -> None:
        """Start a claimed task in a free slot."""
        with self._lock:
            if len(self._running) >= self.concurrency:
                raise RuntimeError("no free execution slot")
            self._running[record.pk] = record
        if is_async(record):
            future = asyncio.run_coroutine_threadsafe(
                run_async(record, history), self._event_loop()
            )
            future.add_done_callback(lambda f: self._done(record, f.result()))
            return
        self._ensure_threads()
        self._jobs.put((record, history))

    def abandon(self) -> list[TaskRecord]:
        """Stop reporting outcomes of running tasks; return them (for a hard stop)."""
        with self._lock:
            abandoned = list(self._running.values())
            self._running.clear()
            self._on_outcome = _discard
        return abandoned

    def close(self) -> None:
        """Let the threads finish their current task and close their connections."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _done(self, record: TaskRecord, outcome: Outcome) -> None:
        with self._lock:
            if self._running.pop(record.pk, None) is None:
                return  # abandoned by a hard stop
            report = self._on_outcome
        report(outcome)

    def _ensure_threads(self) -> None:
        while len(self._threads) < self.concurrency:
            thread = threading.Thread(
                target=self._thread_main,
                name=f"conveyor-task-{len(self._threads) + 1}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _thread_main(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                record, history = job
                self._done(record, run_sync(record, history))
        finally:
            connections.close_all()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="conveyor-async", daemon=True).start()
            self._loop = loop
        return self._loop


def _discard(outcome: Outcome) -> None:
    logger.debug("Discarding outcome of abandoned task id=%s", outcome.record.pk)
