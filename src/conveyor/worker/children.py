"""The process isolation mode (`conveyor_worker --isolation process`): each execution slot
runs sync tasks in a child process of its own, one at a time, as Celery's prefork pool and
RQ's work horse do. A thread cannot be stopped; a process can: at the task's timeout, or
when its cancel is requested, the child is killed and a fresh one takes its place.

Children are started with `spawn` (a fork would share the parent's database connections and
threads) and set Django up once; a task then costs a round trip on a pipe. What crosses the
pipe is pickled: the task row and its history, and back the Outcome (without the exception
object, which may not pickle: the stored error has its traceback).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from conveyor.compat import TaskResultStatus
from conveyor.exceptions import WorkerInterrupted
from conveyor.failures import error_from_message
from conveyor.models import Attempt, TaskRecord
from conveyor.store import Outcome
from conveyor.worker.child import READY_MESSAGE, child_main

logger = logging.getLogger(__name__)

# How long a new child may take to import Django and the project, before it is given up.
CHILD_START_TIMEOUT = timedelta(seconds=60)
# How often a slot waiting for its child looks at the task's deadline and cancel flag.
POLL_INTERVAL = timedelta(milliseconds=20)
# A child asked to exit (the worker stops) gets this long before it is killed.
CHILD_EXIT_TIMEOUT = timedelta(seconds=5)


class Stopped(Exception):
    """The child was killed before the task ended (timeout or cancel)."""


class Child:
    """A child process that runs one sync task at a time for one execution slot."""

    def __init__(self) -> None:
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None

    def run(
        self,
        record: TaskRecord,
        history: Sequence[Attempt],
        *,
        timeout: float | None,
        cancel_flag: threading.Event,
    ) -> Outcome:
        """Run the task in the child; raise Stopped (after killing the child) at the
        deadline or when `cancel_flag` is set."""
        if cancel_flag.is_set():
            raise Stopped("cancel")  # asked before the task began: it never starts
        conn = self._ready()
        conn.send((record, list(history)))
        deadline = None if timeout is None else time.monotonic() + timeout
        while not conn.poll(POLL_INTERVAL.total_seconds()):
            if cancel_flag.is_set():
                self.kill()
                raise Stopped("cancel")
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                raise Stopped("timeout")
            if self.process is not None and not self.process.is_alive():
                return self._died(record)
        try:
            outcome: Outcome = conn.recv()
        except EOFError:
            return self._died(record)
        return replace(outcome, record=record)

    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def kill(self) -> None:
        """Kill the child now; the next task starts a new one."""
        if self.process is not None:
            self.process.kill()
            self.process.join()
        self._forget()

    def close(self) -> None:
        """Ask the child to exit after its task; kill it if it does not."""
        if self.process is None or self.conn is None:
            return
        with suppress(OSError):  # a child that died has no pipe left
            self.conn.send(None)
        self.process.join(CHILD_EXIT_TIMEOUT.total_seconds())
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._forget()

    def _ready(self) -> Connection:
        if self.conn is not None and self.process is not None and self.process.is_alive():
            return self.conn
        self._forget()
        context = multiprocessing.get_context("spawn")
        conn, child_end = context.Pipe()
        process = context.Process(
            target=child_main, args=(child_end,), name="conveyor-child", daemon=True
        )
        process.start()
        child_end.close()
        self.process, self.conn = process, conn
        try:
            ready = conn.poll(CHILD_START_TIMEOUT.total_seconds()) and conn.recv()
        except EOFError:
            ready = False
        if ready != READY_MESSAGE:
            code = process.exitcode
            self.kill()
            raise RuntimeError(
                f"A child process for sync tasks did not start (exit code {code}; "
                "its error is in the worker's output)"
            )
        logger.debug("Child process pid=%s ready", process.pid)
        return conn

    def _died(self, record: TaskRecord) -> Outcome:
        code = None if self.process is None else self.process.exitcode
        self._forget()
        message = f"The child process running the task exited (exit code {code})"
        return Outcome(
            record,
            TaskResultStatus.FAILED,
            error=error_from_message(WorkerInterrupted, message),
            exception=WorkerInterrupted(message),
        )

    def _forget(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn = None, None
