"""Execution slots of one worker: sync tasks on threads (or, with process isolation, in a
child process per slot), coroutine tasks on one event loop.

Slots: a sync task holds one of `concurrency` thread slots, a coroutine one of
`async_concurrency` async slots. A claimed task may be of either kind and must start at
once, so free() (the claim limit) is the smaller of the two counts of free slots: coroutines
leave the thread slots free, and thousands of them can wait on the loop together.

Timeouts: a coroutine is cancelled at its deadline (the runner's asyncio.timeout). A thread
cannot be stopped from outside, so a sync task past its deadline is recorded as failed with
TaskTimeout there and then (what the thread returns later is discarded, and refused by the
store's fence), its thread is counted as stuck, and a new thread takes its slot: the worker
keeps its full concurrency. A stuck thread that comes back ends. With process isolation the
child is killed at the deadline instead, and nothing is left stuck.

Cancels (cancel()): a coroutine is cancelled; a sync task's cancel flag is set, which it may
check (conveyor.raise_if_cancelled); a child process is killed. Any outcome but a success
is then recorded as TaskCancelled.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from django.db import connections

from conveyor.compat import TaskResultStatus
from conveyor.exceptions import TaskCancelled
from conveyor.failures import cancelled_while_running, class_path, error_from_message
from conveyor.models import Attempt, TaskRecord
from conveyor.store import Outcome
from conveyor.worker.children import Child, Stopped
from conveyor.worker.runner import failed, is_async, run_async, run_sync, timed_out

logger = logging.getLogger(__name__)

Job = tuple[TaskRecord, Sequence[Attempt]]
THREAD, PROCESS = "thread", "process"
ISOLATIONS = (THREAD, PROCESS)
CANCELLED = class_path(TaskCancelled)
# Coroutines in flight at once by default: each costs a few kilobytes while it awaits, and
# a thousand tasks that wait 50 ms are 20,000 starts a second, more than one worker process
# can claim and record. The bound keeps a runaway queue from holding a whole backlog in
# one process (which recovery must take back if the process dies).
ASYNC_CONCURRENCY = 1000
# How long one attempt of a task may run (None: as long as it takes).
TimeoutOf = Callable[[TaskRecord], timedelta | None]


def no_timeout(record: TaskRecord) -> timedelta | None:
    return None


@dataclass(frozen=True, slots=True)
class Stuck:
    """A thread still running a sync task whose attempt was recorded at its deadline."""

    thread: str
    task_id: int
    task_path: str
    since: float  # time.monotonic() of the deadline


class ExecutionPool:
    """Runs up to `concurrency` sync tasks and `async_concurrency` coroutine tasks at once
    and hands each Outcome to `on_outcome`.

    Each thread keeps its own database connections (Django's are per thread) and closes
    them when the pool closes.
    """

    def __init__(
        self,
        concurrency: int,
        on_outcome: Callable[[Outcome], None],
        *,
        async_concurrency: int = ASYNC_CONCURRENCY,
        timeout_of: TimeoutOf = no_timeout,
        isolation: str = THREAD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
        self.concurrency = concurrency
        self.async_concurrency = async_concurrency
        self.isolation = isolation
        self._on_outcome = on_outcome
        self._timeout_of = timeout_of
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[int, TaskRecord] = {}
        self._coroutines: set[int] = set()  # the running tasks that hold an async slot
        # Sync tasks with a timeout: id -> (deadline on the clock, timeout in seconds).
        self._deadlines: dict[int, tuple[float, float]] = {}
        self._thread_of: dict[int, threading.Thread] = {}
        self._stuck: dict[threading.Thread, Stuck] = {}
        # Cancels: id -> who asked; each running task's cancel flag; each coroutine's task.
        self._cancelled: dict[int, str] = {}
        self._flags: dict[int, threading.Event] = {}
        self._async_tasks: dict[int, asyncio.Task[Outcome]] = {}
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._started = 0

    def free(self) -> int:
        """How many tasks may be claimed now: each must find a free slot of its kind."""
        with self._lock:
            return min(self._free_threads(), self._free_async())

    def _free_threads(self) -> int:
        return self.concurrency - (len(self._running) - len(self._coroutines))

    def _free_async(self) -> int:
        return self.async_concurrency - len(self._coroutines)

    def running(self) -> list[TaskRecord]:
        with self._lock:
            return list(self._running.values())

    def idle(self) -> bool:
        with self._lock:
            return not self._running

    def submit(self, record: TaskRecord, history: Sequence[Attempt]) -> None:
        """Start a claimed task in a free slot of its kind."""
        coroutine = is_async(record)
        with self._lock:
            if (self._free_async() if coroutine else self._free_threads()) <= 0:
                kind = "async" if coroutine else "thread"
                raise RuntimeError(f"no free {kind} slot")
            self._running[record.pk] = record
            if coroutine:
                self._coroutines.add(record.pk)
            flag = self._flags[record.pk] = threading.Event()
        seconds = self._seconds(record)
        if coroutine:
            self._start_coroutine(record, history, seconds, flag)
            return
        if seconds is not None and self.isolation == THREAD:
            with self._lock:
                self._deadlines[record.pk] = (self._clock() + seconds, seconds)
        self._ensure_threads()
        self._jobs.put((record, history))

    def cancel(self, pk: int, requested_by: str) -> bool:
        """Stop a running task whose cancel was requested; False if it is not running here
        (or is already being stopped)."""
        with self._lock:
            if pk not in self._running or pk in self._cancelled:
                return False
            self._cancelled[pk] = requested_by
            flag = self._flags.get(pk)
            coroutine = self._async_tasks.get(pk)
        logger.info("Task id=%s cancel requested by=%s; stopping it", pk, requested_by)
        if flag is not None:
            flag.set()
        if coroutine is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(coroutine.cancel)
        return True

    def _seconds(self, record: TaskRecord) -> float | None:
        timeout = self._timeout_of(record)
        return None if timeout is None else timeout.total_seconds()

    def _start_coroutine(
        self,
        record: TaskRecord,
        history: Sequence[Attempt],
        seconds: float | None,
        flag: threading.Event,
    ) -> None:
        loop = self._event_loop()

        def start() -> None:
            task = loop.create_task(run_async(record, history, timeout=seconds, cancel_flag=flag))
            with self._lock:
                self._async_tasks[record.pk] = task
                cancelled = record.pk in self._cancelled  # asked before the task existed
            task.add_done_callback(lambda t: self._done(record, coroutine_outcome(record, t)))
            if cancelled:
                task.cancel()

        loop.call_soon_threadsafe(start)

    def expire(self) -> float | None:
        """Record the sync tasks past their deadline as TaskTimeout and give their threads'
        slots to new threads; return the seconds until the next deadline (None: none)."""
        now = self._clock()
        expired: list[tuple[TaskRecord, float, str | None]] = []
        with self._lock:
            for pk, (deadline, seconds) in list(self._deadlines.items()):
                if deadline > now:
                    continue
                del self._deadlines[pk]
                record = self._running.pop(pk, None)
                if record is None:
                    continue
                self._flags.pop(pk, None)
                expired.append((record, seconds, self._cancelled.pop(pk, None)))
                thread = self._thread_of.get(pk)
                if thread is not None:
                    self._stuck[thread] = Stuck(thread.name, pk, record.task_path, now)
            report = self._on_outcome
            upcoming = min((d for d, _ in self._deadlines.values()), default=None)
        for record, seconds, requested_by in expired:
            logger.warning(
                "Task id=%s path=%s timed out after %gs; its thread is stuck (stuck_threads=%d)",
                record.pk,
                record.task_path,
                seconds,
                len(self.stuck()),
            )
            outcome = timed_out(record, seconds)
            report(outcome if requested_by is None else stopped(outcome, requested_by))
        if expired:
            self._ensure_threads()
        return None if upcoming is None else max(upcoming - now, 0.0)

    def stuck(self) -> list[Stuck]:
        """The threads still running a task recorded at its deadline, longest stuck first."""
        with self._lock:
            return sorted(self._stuck.values(), key=lambda s: s.since)

    def abandon(self) -> list[TaskRecord]:
        """Stop reporting outcomes of running tasks; return them (for a hard stop)."""
        with self._lock:
            abandoned = list(self._running.values())
            self._running.clear()
            self._coroutines.clear()
            self._deadlines.clear()
            self._cancelled.clear()
            self._on_outcome = _discard
        return abandoned

    def close(self) -> None:
        """Let the threads finish their current task and close their connections."""
        with self._lock:
            threads = [t for t in self._threads if t not in self._stuck]
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(timeout=5)
        if self._loop is not None and self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5)
            if not self._loop.is_running():
                self._loop.close()  # its self-pipe sockets, not left to the garbage collector

    def _done(self, record: TaskRecord, outcome: Outcome) -> None:
        with self._lock:
            self._deadlines.pop(record.pk, None)
            self._flags.pop(record.pk, None)
            self._async_tasks.pop(record.pk, None)
            self._coroutines.discard(record.pk)
            requested_by = self._cancelled.pop(record.pk, None)
            if self._running.pop(record.pk, None) is None:
                return  # abandoned by a hard stop, or recorded at its deadline
            report = self._on_outcome
        if requested_by is not None:
            outcome = stopped(outcome, requested_by)
        report(outcome)

    def _ensure_threads(self) -> None:
        with self._lock:
            missing = self.concurrency + len(self._stuck) - len(self._threads)
            for _ in range(missing):
                self._started += 1
                thread = threading.Thread(
                    target=self._thread_main, name=f"conveyor-task-{self._started}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _thread_main(self) -> None:
        me = threading.current_thread()
        child = Child() if self.isolation == PROCESS else None
        try:
            while (job := self._jobs.get()) is not None:
                record, history = job
                with self._lock:
                    self._thread_of[record.pk] = me
                    flag = self._flags.get(record.pk) or threading.Event()
                self._done(record, self._run_sync(record, history, child, flag))
                with self._lock:
                    self._thread_of.pop(record.pk, None)
                    if self._stuck.pop(me, None) is not None:
                        # Back from a task recorded at its deadline: its slot has a new thread.
                        logger.warning(
                            "Stuck thread %s came back from task id=%s", me.name, record.pk
                        )
                        self._threads.remove(me)
                        return
        finally:
            if child is not None:
                child.close()
            connections.close_all()

    def _run_sync(
        self,
        record: TaskRecord,
        history: Sequence[Attempt],
        child: Child | None,
        flag: threading.Event,
    ) -> Outcome:
        if child is None:
            return run_sync(record, history, cancel_flag=flag)
        seconds = self._seconds(record)
        try:
            return child.run(record, history, timeout=seconds, cancel_flag=flag)
        except Stopped as stop:
            if str(stop) == "timeout":
                logger.warning(
                    "Task id=%s path=%s ran past its timeout=%gs; its child process was killed",
                    record.pk,
                    record.task_path,
                    seconds or 0,
                )
                return timed_out(record, seconds or 0)
            message = "The task was cancelled: its child process was killed"
            return Outcome(
                record,
                TaskResultStatus.FAILED,
                error=error_from_message(TaskCancelled, message),
                exception=TaskCancelled(message),
            )
        except Exception as exc:  # noqa: BLE001 - a child that cannot start fails the task
            return failed(record, exc)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="conveyor-async", daemon=True)
            thread.start()
            self._loop, self._loop_thread = loop, thread
        return self._loop


def coroutine_outcome(record: TaskRecord, task: asyncio.Task[Outcome]) -> Outcome:
    """What a coroutine task ended with (cancelled before it began: a CancelledError)."""
    if task.cancelled():
        return failed(record, asyncio.CancelledError())
    return task.result()


def stopped(outcome: Outcome, requested_by: str) -> Outcome:
    """The outcome of a task whose cancel was requested: a success stands; anything else
    ends as TaskCancelled (never retried), keeping what the task raised."""
    if outcome.status == TaskResultStatus.SUCCESSFUL:
        return outcome
    error = outcome.error
    if error is not None and error.exception_class_path == CANCELLED:
        return replace(outcome, snooze=None)
    message = f"The task was cancelled (requested by {requested_by})"
    return replace(
        outcome,
        status=TaskResultStatus.FAILED,
        snooze=None,
        error=cancelled_while_running(requested_by, error),
        exception=TaskCancelled(message),
    )


def _discard(outcome: Outcome) -> None:
    logger.debug("Discarding outcome of abandoned task id=%s", outcome.record.pk)
