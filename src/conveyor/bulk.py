"""enqueue_many: many calls of one task in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from conveyor.backend import DatabaseBackend, controlled
from conveyor.compat import Task, TaskResult
from conveyor.results import AnyTask
from conveyor.store import NewTask


def enqueue_many[**P, R](
    task: Task[P, R], calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]]
) -> list[TaskResult[P, R]]:
    """Queue up one task many times, all or nothing; return the results in order.

    Every call is validated before anything is stored; the rows are inserted in batches of
    about a thousand in one transaction, so idle workers wake once, when it commits.
    """
    backend = task.get_backend()
    if not isinstance(backend, DatabaseBackend):
        raise TypeError(
            f"enqueue_many needs a conveyor DatabaseBackend; task backend {task.backend!r} "
            f"is {type(backend).__name__}"
        )
    backend.validate_task(task)
    records = [record(backend, task, index, call) for index, call in enumerate(calls)]
    if not records:
        return []
    if not any(map(controlled, records)):
        backend.store.insert(records)
        return [cast("TaskResult[P, R]", backend.announce(task, r)) for r in records]
    found = backend.store.insert_controlled(records)
    return [
        cast("TaskResult[P, R]", backend.announce_or_duplicate(task, r, live))
        for r, live in zip(records, found, strict=True)
    ]


def record(backend: DatabaseBackend, task: AnyTask, index: int, call: object) -> NewTask:
    """The unsaved row of one call; raise TypeError naming the item if it is bad."""
    args, kwargs = checked_call(index, call)
    try:
        return backend.new_task(task, args, kwargs)
    except TypeError as exc:
        raise TypeError(f"enqueue_many item {index}: {exc}") from exc


def checked_call(index: int, call: object) -> tuple[Sequence[Any], Mapping[str, Any]]:
    """One (args, kwargs) item; raise TypeError naming the item if it is not one."""
    if not isinstance(call, tuple | list) or len(call) != 2:
        raise TypeError(f"enqueue_many item {index}: expected an (args, kwargs) pair, got {call!r}")
    args, kwargs = call
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise TypeError(f"enqueue_many item {index}: args must be a list or tuple, got {args!r}")
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"enqueue_many item {index}: kwargs must be a dict, got {kwargs!r}")
    return args, kwargs
