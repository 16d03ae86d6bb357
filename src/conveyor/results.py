"""Rows -> django.tasks.TaskResult: the one place that builds results."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from conveyor.compat import Task, TaskError, TaskResult, TaskResultStatus

if TYPE_CHECKING:  # the backend imports this module before the app registry is ready
    from conveyor.models import Attempt, TaskRecord
    from conveyor.store.values import NewTask

type AnyTask = Task[..., Any]
type AnyResult = TaskResult[..., Any]

_STORED = object()


@lru_cache(maxsize=1024)
def import_task(task_path: str) -> AnyTask:
    """Import the Task object a path names; raise ImportError if it is not one."""
    try:
        task = import_string(task_path)
    except ImportError:
        raise
    except Exception as exc:  # a module that fails while importing
        raise ImportError(f"cannot import task {task_path!r}: {exc!r}") from exc
    if not isinstance(task, Task):
        raise ImportError(f"{task_path!r} is not a task (decorate it with @task)")
    return task


def stored_task(record: TaskRecord) -> AnyTask:
    """The Task as it was enqueued: its function, with the row's priority, queue and run_after."""
    return rebuild_task(
        import_task(record.task_path),
        priority=record.priority,
        queue_name=record.queue_name,
        run_after=record.run_after,
        backend=record.backend_name,
    )


def rebuild_task(task: AnyTask, **changes: Any) -> AnyTask:
    """Copy a Task with changes, without validating it again.

    A stored task stays readable after its queue leaves QUEUES; validation belongs to enqueue.
    """
    if all(getattr(task, name) == value for name, value in changes.items()):
        return task
    copy = object.__new__(type(task))
    for name in (f.name for f in fields(task)):
        object.__setattr__(copy, name, changes.get(name, getattr(task, name)))
    return copy


def error_of(attempt: Attempt) -> TaskError | None:
    error = getattr(attempt, "error", None)
    if error is None:
        return None
    return TaskError(exception_class_path=error.exception_class_path, traceback=error.traceback)


def build_result(
    record: TaskRecord, attempts: Iterable[Attempt], *, task: AnyTask | None = None
) -> AnyResult:
    """Build the TaskResult of a row and its attempts (oldest first)."""
    attempts = list(attempts)
    worker_ids = [attempt.worker_id for attempt in attempts]
    if record.status == TaskResultStatus.RUNNING and record.worker_id:
        # The running attempt is written when it ends; until then the row holds its worker.
        worker_ids.append(record.worker_id)
    return make_result(
        record,
        task=task or stored_task(record),
        errors=[e for e in map(error_of, attempts) if e is not None],
        worker_ids=worker_ids,
    )


def make_result(
    record: TaskRecord | NewTask,
    *,
    task: AnyTask,
    errors: Sequence[TaskError],
    worker_ids: Sequence[str],
    status: TaskResultStatus | None = None,
    finished_at: datetime | None = None,
    return_value: Any = _STORED,
) -> AnyResult:
    """Assemble a TaskResult; the keyword arguments override what the row says."""
    arguments = record.arguments if isinstance(record.arguments, dict) else {}
    result: AnyResult = TaskResult(
        task=task,
        id=str(record.pk),
        status=TaskResultStatus(status or record.status),
        enqueued_at=record.enqueued_at,
        started_at=record.started_at,
        finished_at=finished_at or record.finished_at,
        last_attempted_at=record.last_attempted_at,
        args=arguments.get("args", []),
        kwargs=arguments.get("kwargs", {}),
        backend=record.backend_name,
        errors=list(errors),
        worker_ids=list(worker_ids),
    )
    if result.status == TaskResultStatus.SUCCESSFUL:
        value = record.return_value if return_value is _STORED else return_value
        object.__setattr__(result, "_return_value", value)
    return result


def has_history(record: TaskRecord) -> bool:
    """Whether a claimed task was attempted before: retried by its policy, or by an operator
    (whose retry renews the budget, so attempt_count starts again from zero)."""
    return record.attempt_count > 1 or record.started_at != record.last_attempted_at


def finished_result(
    record: TaskRecord,
    *,
    task: AnyTask,
    status: TaskResultStatus,
    finished_at: datetime | None,
    return_value: Any,
    error: TaskError | None,
    history: Sequence[Attempt],
) -> AnyResult:
    """The result of a task that just reached a final state, as its last attempt left it.

    `history` holds every attempt, the last included, when the task had earlier ones (see
    has_history); without them it is not read, and the last attempt is the whole history.
    """
    if has_history(record):
        errors = [e for e in map(error_of, history) if e is not None]
        worker_ids = [attempt.worker_id for attempt in history]
    else:
        errors = [error] if error else []
        worker_ids = [record.worker_id]
    return make_result(
        record,
        task=task,
        errors=errors,
        worker_ids=worker_ids,
        status=status,
        finished_at=finished_at,
        return_value=return_value,
    )


if TYPE_CHECKING:  # django-stubs make TaskResult generic; at run time it is not subscriptable
    ResultBase = TaskResult[..., Any]
else:
    ResultBase = TaskResult


# Frozen at run time, as TaskResult is there (django-stubs declare it unfrozen).
@dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateResult(ResultBase):  # type: ignore[misc]
    """What enqueueing a unique task returns when a live task holds its key: that task's
    result. Nothing was stored, and task_enqueued was not sent for it."""


def as_duplicate(result: AnyResult) -> DuplicateResult:
    """The same result, marked as a duplicate enqueue's."""
    values = {f.name: getattr(result, f.name) for f in fields(TaskResult) if f.init}
    duplicate = DuplicateResult(**values)
    object.__setattr__(duplicate, "_return_value", getattr(result, "_return_value", None))
    return duplicate
