"""Tasks the tests enqueue; worker processes import them by path."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from django.tasks import TaskContext, task

from tests.tasksapp.models import Execution


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def noop() -> None:
    return None


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task(takes_context=True)
def record(context: TaskContext[Any, Any], label: str = "", sleep: float = 0.0) -> int:
    """Write one Execution row per run, then sleep; return the attempt number."""
    Execution.objects.create(
        result_id=context.task_result.id,
        attempt=context.attempt,
        pid=os.getpid(),
        label=label,
    )
    if sleep:
        time.sleep(sleep)
    return context.attempt


@task(takes_context=True)
def fail_until(context: TaskContext[Any, Any], succeed_on: int) -> int:
    """Fail (ValueError) until attempt `succeed_on`; record every run."""
    Execution.objects.create(
        result_id=context.task_result.id, attempt=context.attempt, pid=os.getpid()
    )
    if context.attempt < succeed_on:
        raise ValueError(f"attempt {context.attempt} fails")
    return context.attempt


@task
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@task
def exit_task() -> None:
    raise SystemExit(3)


@task
def keyboard_interrupt() -> None:
    raise KeyboardInterrupt


@task
def unserialisable_return() -> object:
    return object()


@task
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task
async def async_sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@task(takes_context=True)
async def async_record(context: TaskContext[Any, Any], label: str = "") -> int:
    await Execution.objects.acreate(
        result_id=context.task_result.id, attempt=context.attempt, pid=os.getpid(), label=label
    )
    return context.attempt


@task(queue_name="low_priority")
def low(value: int) -> int:
    return value


@task(takes_context=True)
def slow_first(context: TaskContext[Any, Any], seconds: float, label: str = "") -> int:
    """Record the run; sleep only on the first attempt (so a retry ends quickly)."""
    Execution.objects.create(
        result_id=context.task_result.id, attempt=context.attempt, pid=os.getpid(), label=label
    )
    if context.attempt == 1:
        time.sleep(seconds)
    return context.attempt


# Set by tests that run a worker in their own process (tests/contract/test_loop.py).
RELEASE = threading.Event()


@task
def held() -> None:
    """Wait until the test running it in process releases it (at most a minute)."""
    RELEASE.wait(60)


@task(takes_context=True)
def steps(context: Any, total: int, gate: str = "") -> int:
    """Report progress through `total` steps; after the first, wait for the file `gate`
    (if given) to exist, so a test can read the progress from another process."""
    context.metadata["stage"] = "started"
    for done in range(1, total + 1):
        context.set_progress(done, total)
        if gate and done == 1:
            while not os.path.exists(gate):
                time.sleep(0.01)
    context.metadata["stage"] = "done"  # saved when the attempt ends
    return total


@task(takes_context=True)
def annotate(context: Any, key: str, value: Any) -> dict[str, Any]:
    """Set one metadata key (saved when the attempt ends); return the metadata it saw."""
    seen = dict(context.metadata)
    context.metadata[key] = value
    return seen
