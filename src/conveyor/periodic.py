"""The tasks of a backend's schedules: each schedule's task path imported and its arguments
checked once, into the row every tick inserts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from conveyor.compat import InvalidTask, Task
from conveyor.schedules import Schedule, ScheduleError

if TYPE_CHECKING:
    from conveyor.backend import DatabaseBackend
    from conveyor.store import NewTask


def scheduled_task(backend: DatabaseBackend, schedule: Schedule) -> NewTask:
    """The row a tick of `schedule` inserts; raise ScheduleError naming what is wrong."""
    where = f"TASKS[{backend.alias!r}] OPTIONS periodic[{schedule.name!r}]"
    try:
        task: Any = import_string(schedule.task_path)
    except ImportError as exc:
        raise ScheduleError(
            f"{where}['task']", f"cannot import {schedule.task_path!r}: {exc}"
        ) from None
    if not isinstance(task, Task):
        raise ScheduleError(
            f"{where}['task']", f"{schedule.task_path!r} is not a django.tasks task (use @task)"
        )
    if task.backend != backend.alias:
        raise ScheduleError(
            f"{where}['task']",
            f"{schedule.task_path!r} runs on backend {task.backend!r}, not {backend.alias!r}",
        )
    try:
        if schedule.priority is not None:
            task = task.using(priority=schedule.priority)
        if schedule.queue_name is not None:
            task = task.using(queue_name=schedule.queue_name)
        return backend.prepare(task, schedule.args, schedule.kwargs)
    except (InvalidTask, TypeError) as exc:
        raise ScheduleError(where, str(exc)) from None


def scheduled_tasks(backend: DatabaseBackend) -> dict[str, NewTask]:
    """The row of every schedule of the backend, by name; raise the first ScheduleError."""
    return {
        name: scheduled_task(backend, schedule)
        for name, schedule in backend.config.periodic.items()
    }


def schedule_problems(backend: DatabaseBackend) -> list[str]:
    """What is wrong with the backend's schedules, one line each."""
    problems = []
    for schedule in backend.config.periodic.values():
        try:
            scheduled_task(backend, schedule)
        except ScheduleError as exc:
            problems.append(str(exc))
    return problems
