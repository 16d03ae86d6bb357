"""What the page shows of one result of send_notification or broadcast."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import conveyor
from conveyor.compat import TaskError, TaskResult, TaskResultStatus
from conveyor.context import progress_of
from conveyor.models import TaskRecord
from messagecenter.tasks import broadcast


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
    # When a task that waits for its next attempt is due; None for any other.
    next_attempt_at: datetime | None = None
    # A broadcast's topics, and how many it has sent to (from its metadata).
    topics: tuple[str, ...] = ()
    progress: tuple[int, int | None] | None = None

    @classmethod
    def of(
        cls,
        result: TaskResult[..., Any],
        *,
        next_attempt_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Row:
        arguments = bound_arguments(result)
        return cls(
            id=result.id,
            status=TaskResultStatus(result.status),
            enqueued_at=result.enqueued_at,
            message=str(arguments.get("message", "")),
            title=arguments.get("title") or None,
            attempts=result.attempts,
            error=ErrorSummary.of(result.errors[-1]) if result.errors else None,
            next_attempt_at=next_attempt_at,
            topics=tuple(arguments.get("topics") or ()),
            progress=progress_of(metadata or {}),
        )

    @property
    def finished(self) -> bool:
        return self.status in {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}

    @property
    def retrying(self) -> bool:
        """Ready again after an attempt that did not finish it: it failed, or its worker died."""
        return self.status == TaskResultStatus.READY and self.attempts > 0

    @property
    def status_label(self) -> str:
        return "Retrying" if self.retrying else str(self.status.label)

    @property
    def status_class(self) -> str:
        """The CSS modifier of the status badge."""
        return "retrying" if self.retrying else self.status.value.lower()

    @property
    def state(self) -> str:
        """Changes whenever the row would look different: a new status, a new attempt, or
        more of a broadcast sent."""
        done = "" if self.progress is None else f"-{self.progress[0]}"
        return f"{self.status.value}-{self.attempts}{done}"


def rows_of(results: Iterable[TaskResult[..., Any]]) -> list[Row]:
    """The rows of results, each one that waits for a retry with the time it is due."""
    found = list(results)
    due = next_attempts(
        [r.id for r in found if r.status == TaskResultStatus.READY and r.attempts > 0]
    )
    return [
        Row.of(result, next_attempt_at=due.get(result.id), metadata=metadata_of(result))
        for result in found
    ]


def metadata_of(result: TaskResult[..., Any]) -> dict[str, Any] | None:
    """A broadcast's metadata as its row holds it now (its progress); None for other tasks.

    django.tasks' TaskResult has no metadata in Django 6.1; conveyor.metadata() reads it.
    """
    if result.task.module_path != broadcast.module_path:
        return None
    return conveyor.metadata(result)


def next_attempts(result_ids: list[str]) -> dict[str, datetime]:
    """When each of these tasks may run next, by result id.

    django.tasks' TaskResult has no field for it; conveyor keeps it in the task's row
    (available_after: the end of the retry's back-off).
    """
    if not result_ids:
        return {}
    due = TaskRecord.objects.filter(pk__in=result_ids).values_list("pk", "available_after")
    return {str(pk): at for pk, at in due}


def bound_arguments(result: TaskResult[..., Any]) -> dict[str, Any]:
    """The task's arguments by name, however they were passed; empty if they do not fit."""
    context = (None,) if result.task.takes_context else ()
    try:
        signature = inspect.signature(result.task.func)
        return dict(signature.bind(*context, *result.args, **result.kwargs).arguments)
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
