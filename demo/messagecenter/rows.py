"""What the page shows of one send_notification result."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.tasks import TaskResult, TaskResultStatus
from django.tasks.base import TaskError

from messagecenter.tasks import send_notification

_SIGNATURE = inspect.signature(send_notification.func)


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """The exception that ended an attempt: its class, its message and the whole traceback."""

    exception_class_path: str
    message: str
    traceback: str

    @classmethod
    def of(cls, error: TaskError) -> ErrorSummary:
        return cls(
            exception_class_path=error.exception_class_path,
            message=exception_message(error),
            traceback=error.traceback,
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One result as a row: what was sent, where it stands, and what went wrong last."""

    id: str
    status: TaskResultStatus
    enqueued_at: datetime | None
    message: str
    title: str | None
    attempts: int
    error: ErrorSummary | None

    @classmethod
    def of(cls, result: TaskResult[..., Any]) -> Row:
        arguments = bound_arguments(result)
        return cls(
            id=result.id,
            status=TaskResultStatus(result.status),
            enqueued_at=result.enqueued_at,
            message=str(arguments.get("message", "")),
            title=arguments.get("title") or None,
            attempts=result.attempts,
            error=ErrorSummary.of(result.errors[-1]) if result.errors else None,
        )

    @property
    def finished(self) -> bool:
        return self.status in {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}

    @property
    def status_label(self) -> str:
        return str(self.status.label)

    @property
    def state(self) -> str:
        """Changes whenever the row would look different: a new status or a new attempt."""
        return f"{self.status.value}-{self.attempts}"


def bound_arguments(result: TaskResult[..., Any]) -> dict[str, Any]:
    """The task's arguments by name, however they were passed; empty if they do not fit."""
    try:
        return dict(_SIGNATURE.bind(*result.args, **result.kwargs).arguments)
    except TypeError:
        return {}


def exception_message(error: TaskError) -> str:
    """The exception's own text, taken from the end of its traceback."""
    path = error.exception_class_path
    names = (path, path.removeprefix("builtins."))
    lines = error.traceback.rstrip().splitlines()
    for index in range(len(lines) - 1, -1, -1):
        for name in names:
            if lines[index] == name:
                return ""
            if lines[index].startswith(f"{name}: "):
                first = lines[index].removeprefix(f"{name}: ")
                return "\n".join([first, *lines[index + 1 :]])
    return lines[-1] if lines else ""
