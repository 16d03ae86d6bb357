"""Metadata at enqueue and for anyone holding a result.

Django 6.1 has no place for metadata on a Task or a TaskResult (both are slotted dataclasses,
and refresh() copies a fixed list of fields), so conveyor offers functions beside them:
`enqueue(task, *args, metadata=..., **kwargs)` stores metadata with a new task, and
`metadata(result)` reads what the task's row holds now, which is what a progress display
wants. The running task reads and saves its own through conveyor.context.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from asgiref.sync import sync_to_async

from conveyor.backend import DatabaseBackend, parse_result_id
from conveyor.compat import Task, TaskResult, TaskResultDoesNotExist
from conveyor.results import AnyResult, AnyTask


def enqueue[**P, R](
    task: Task[P, R], *args: Any, metadata: Mapping[str, Any], **kwargs: Any
) -> TaskResult[P, R]:
    """Queue up a task with metadata (JSON, string keys), as task.enqueue() would.

    `metadata` is keyword-only and required: a task with a parameter of that name is
    enqueued with task.enqueue() and has no metadata at enqueue.
    """
    backend = conveyor_backend(task)
    new = backend.prepare(task, args, kwargs, metadata=metadata)
    backend.store.insert([new])
    return cast("TaskResult[P, R]", backend.announce(task, new))


def metadata(result: AnyResult) -> dict[str, Any]:
    """The task's metadata as its row holds it now; raise TaskResultDoesNotExist."""
    from conveyor.models import TaskRecord

    backend = conveyor_backend(result.task)
    try:
        return backend.store.metadata(parse_result_id(result.id))
    except TaskRecord.DoesNotExist:
        raise TaskResultDoesNotExist(result.id) from None


async def ametadata(result: AnyResult) -> dict[str, Any]:
    """See metadata()."""
    return await sync_to_async(metadata, thread_sensitive=True)(result)


def update_metadata(
    result: AnyResult, changed: Mapping[str, Any], *, removed: Iterable[str] = ()
) -> bool:
    """Set some keys of a task's metadata and drop others, whatever state it is in, keeping
    every other key (the running task's too); return False if the task is gone."""
    backend = conveyor_backend(result.task)
    return backend.store.save_metadata(parse_result_id(result.id), changed=changed, removed=removed)


def conveyor_backend(task: AnyTask) -> DatabaseBackend:
    backend = task.get_backend()
    if not isinstance(backend, DatabaseBackend):
        raise TypeError(
            f"task metadata needs a conveyor DatabaseBackend; task backend {task.backend!r} "
            f"is {type(backend).__name__}"
        )
    return backend
