"""Exceptions of conveyor; each docstring is the default message."""

from __future__ import annotations


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


class MalformedTask(ConveyorError):
    """The stored task cannot be run as it is stored."""


class TaskOptionError(ConveyorError, ValueError):
    """A conveyor option given to @task is not valid."""


class WorkerIdInUse(ConveyorError):
    """Another live worker uses this worker id."""
