"""Exceptions of conveyor; each docstring is the default message."""

from __future__ import annotations

from datetime import timedelta


class ConveyorError(Exception):
    """conveyor could not complete the operation."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class WorkerLost(ConveyorError):
    """The worker running this task stopped sending heartbeats."""


class WorkerInterrupted(ConveyorError):
    """The worker was stopped while this task was running."""


class TaskCancelled(ConveyorError):
    """The task was cancelled."""


class TaskTimeout(ConveyorError):
    """The task ran longer than its timeout."""


class RetryPolicyError(ConveyorError):
    """The task's retry policy failed, so the task is not retried."""


class SnoozeLimit(ConveyorError):
    """The task snoozed more often than its queue's max_snoozes allows."""


class Snooze(ConveyorError):
    """The task asked to run again later."""

    def __init__(self, delay: float | timedelta = 0) -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
            raise ValueError(f"Snooze() takes seconds >= 0 or a timedelta, got {delay!r}")
        self.delay = timedelta(seconds=seconds)
        super().__init__(f"The task asked to run again in {seconds:g}s")


class MalformedTask(ConveyorError):
    """The stored task cannot be run as it is stored."""


class TaskOptionError(ConveyorError, ValueError):
    """A conveyor option given to @task is not valid."""


class WorkerIdInUse(ConveyorError):
    """Another live worker uses this worker id."""
