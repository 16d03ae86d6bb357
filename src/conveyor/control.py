"""What a running task can ask conveyor: whether someone asked for it to stop.

A sync task in a thread cannot be stopped from outside; one that can stop halfway checks:

    from conveyor import raise_if_cancelled

    @task
    def export(rows: int) -> None:
        for chunk in range(rows // 1000):
            raise_if_cancelled()  # TaskCancelled once conveyor.cancel(result_id) was called
            write_chunk(chunk)

Coroutine tasks get CancelledError at their next await, and sync tasks in the process
isolation mode are stopped for real; both may check too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from conveyor.exceptions import TaskCancelled

# The cancel flag of the task running in this thread or coroutine (contextvars follow both).
_cancel_flag: ContextVar[threading.Event | None] = ContextVar("conveyor_cancel", default=None)


def cancel_requested() -> bool:
    """Whether a cancel of the running task was requested (False outside a task)."""
    flag = _cancel_flag.get()
    return flag is not None and flag.is_set()


def raise_if_cancelled() -> None:
    """Raise TaskCancelled when a cancel of the running task was requested."""
    if cancel_requested():
        raise TaskCancelled("The task was cancelled while running, and stopped")


@contextmanager
def running(flag: threading.Event | None) -> Iterator[None]:
    """Make `flag` the running task's cancel flag within the block."""
    token = _cancel_flag.set(flag)
    try:
        yield
    finally:
        _cancel_flag.reset(token)
