"""conveyor's task class: Django's Task, with the per-task options of conveyor.

Django 6.1 (and the django-tasks backport on Django 5.2) passes the keyword arguments of
`@task(...)` that it does not know to the backend's `task_class`; `DatabaseBackend.task_class`
is `ConveyorTask`, so Django's own decorator takes conveyor's options when the backend is
conveyor's:

    @task(max_attempts=5, timeout=30)
    def send_report(report_id: int) -> None: ...

Django 6.0's decorator does not pass them on: there, `conveyor.tasks.task` takes them, as
it does on every supported Django (it is the same decorator otherwise).

An unknown option is a TypeError when the module is imported, and a bad value a TypeError
or ValueError naming the task and the option; nothing is silently ignored. Each option is
None when not given: the queue's setting applies then, and after it the backend's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Concatenate, Literal, overload

from conveyor.compat import (
    DEFAULT_TASK_BACKEND_ALIAS,
    DEFAULT_TASK_PRIORITY,
    DEFAULT_TASK_QUEUE_NAME,
    Task,
    TaskContext,
    task_backends,
)
from conveyor.task_options import OPTION_PARSERS, TaskOptionError

if TYPE_CHECKING:  # django-stubs make Task generic; at run time it is not subscriptable
    TaskBase = Task[..., Any]
else:
    TaskBase = Task


@dataclass(frozen=True, slots=True, kw_only=True)
class ConveyorTask(TaskBase):
    """A django.tasks Task with conveyor's options (see the module's docstring)."""

    # How many attempts in all (>= 1); django/new-features issue 142's name.
    max_attempts: int | None = None
    # After a failed attempt: (exception, task_result) -> seconds, timedelta or None (stop).
    backoff: Any = None
    # How long one attempt may run (seconds or a timedelta).
    timeout: Any = None
    # At most one task per key in its states: True, or conveyor.flow.Unique(...).
    unique: Any = None
    # At most N tasks per key holding a slot: N, or conveyor.flow.Concurrency(...).
    concurrency: Any = None
    # At most N starts per period per key: "100/m", or conveyor.flow.RateLimit(...).
    rate_limit: Any = None

    def __post_init__(self) -> None:
        for option in fields(ConveyorTask):
            parse = OPTION_PARSERS.get(option.name)
            value = getattr(self, option.name)
            if parse is None or value is None:
                continue
            try:
                object.__setattr__(self, option.name, parse(value))
            except (TypeError, ValueError) as exc:
                raise TaskOptionError(
                    f"@task option {option.name} of {self.module_path}: {exc}"
                ) from None
        Task.__post_init__(self)  # zero-argument super() fails in a slots dataclass


def conveyor_options(task: Task[..., Any]) -> dict[str, Any]:
    """The conveyor options a task was declared with (empty for a plain Django Task)."""
    if not isinstance(task, ConveyorTask):
        return {}
    names = {f.name for f in fields(ConveyorTask)} - {f.name for f in fields(Task)}
    return {name: getattr(task, name) for name in sorted(names)}


@overload
def task[**P, R](
    function: Callable[P, R],
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    takes_context: Literal[False] = False,
    **options: Any,
) -> Task[P, R]: ...
@overload
def task[**P, R](
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    takes_context: Literal[True],
    **options: Any,
) -> Callable[[Callable[Concatenate[TaskContext[Any, Any], P], R]], Task[P, R]]: ...
@overload
def task[**P, R](
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    takes_context: Literal[False] = False,
    **options: Any,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(
    function: Callable[..., Any] | None = None,
    *,
    priority: int = DEFAULT_TASK_PRIORITY,
    queue_name: str = DEFAULT_TASK_QUEUE_NAME,
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    takes_context: bool = False,
    **options: Any,
) -> Any:
    """Define a task: Django's `@task`, passing conveyor's options (`max_attempts`,
    `backoff`, `timeout`) to the backend's task class on every supported Django."""

    def wrapper(func: Callable[..., Any]) -> Task[..., Any]:
        made: Task[..., Any] = task_backends[backend].task_class(
            priority=priority,
            func=func,
            queue_name=queue_name,
            backend=backend,
            takes_context=takes_context,
            run_after=None,
            **options,
        )
        return made

    return wrapper(function) if function is not None else wrapper
