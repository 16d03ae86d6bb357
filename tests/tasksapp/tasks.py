"""Tasks the tests enqueue; worker processes import them by path."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from datetime import timedelta
from typing import Any

from conveyor.compat import TaskContext, TaskResult
from conveyor.control import raise_if_cancelled
from conveyor.exceptions import Snooze
from conveyor.tasks import task
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


@task
def span(seconds: float) -> list[float]:
    """Sleep; return when this run started and ended (time.time())."""
    started = time.time()
    time.sleep(seconds)
    return [started, time.time()]


# async_rendezvous: how many runs of each label have started in this process, and the
# event that tells them all are there (every coroutine runs on the worker's one loop).
ARRIVED: dict[str, int] = {}
EVERYONE: dict[str, asyncio.Event] = {}


@task
async def async_rendezvous(label: str, count: int) -> list[float]:
    """Wait until `count` runs with this label are in flight in this process (at most 30 s);
    return when this run started and ended (time.time())."""
    started = time.time()
    everyone = EVERYONE.setdefault(label, asyncio.Event())
    ARRIVED[label] = ARRIVED.get(label, 0) + 1
    if ARRIVED[label] >= count:
        everyone.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(everyone.wait(), 30)
    return [started, time.time()]


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


# -- per-task controls: retry policy and timeouts (ConveyorTask's options) -----------------

# What the back-offs below were called with: (exception class name, attempts, error classes).
BACKOFF_CALLS: list[tuple[str, int, list[str]]] = []


def noted_backoff(exception: BaseException, task_result: TaskResult[Any, Any]) -> float:
    """No delay; note what the policy was given."""
    BACKOFF_CALLS.append(
        (
            type(exception).__name__,
            task_result.attempts,
            [e.exception_class_path for e in task_result.errors],
        )
    )
    return 0


def hour_backoff(exception: BaseException, task_result: TaskResult[Any, Any]) -> timedelta:
    return timedelta(hours=1)


def broken_backoff(exception: BaseException, task_result: TaskResult[Any, Any]) -> float:
    raise RuntimeError("the policy has a bug")


def nonsense_backoff(exception: BaseException, task_result: TaskResult[Any, Any]) -> object:
    return "soon"


# django-stubs do not know yet that @task passes extra options to the backend's task class.
@task(takes_context=True, max_attempts=3, backoff=noted_backoff)
def flaky(context: TaskContext[Any, Any], succeed_on: int) -> int:
    """fail_until with its own policy: three attempts, no delay."""
    Execution.objects.create(
        result_id=context.task_result.id, attempt=context.attempt, pid=os.getpid()
    )
    if context.attempt < succeed_on:
        raise ValueError(f"attempt {context.attempt} fails")
    return context.attempt


@task(max_attempts=4, backoff=hour_backoff)
def patient(*args: Any) -> None:
    raise ValueError("try again in an hour")


@task(max_attempts=3, backoff=broken_backoff)
def badly_retried(*args: Any) -> None:
    raise ValueError("the task's own error")


@task(max_attempts=3, backoff=nonsense_backoff)
def nonsense_retried(*args: Any) -> None:
    raise ValueError("the task's own error")


@task(timeout=0.5)
def hang(seconds: float = 3600) -> None:
    """A sync task that outlives its timeout (a thread cannot be stopped)."""
    time.sleep(seconds)


@task(timeout=0.5)
async def async_hang(seconds: float = 3600) -> None:
    await asyncio.sleep(seconds)


@task(takes_context=True)
def rendezvous(context: TaskContext[Any, Any], label: str, count: int) -> int:
    """Succeed only if `count` runs with this label are running at once (within 20 s)."""
    Execution.objects.create(
        result_id=context.task_result.id, attempt=context.attempt, pid=os.getpid(), label=label
    )
    deadline = time.monotonic() + 20
    while Execution.objects.filter(label=label).count() < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} tasks {label!r} ran at once")
        time.sleep(0.05)
    return count


@task(takes_context=True)
def snooze_twice(context: TaskContext[Any, Any]) -> int:
    """Snooze on the first two attempts, then succeed."""
    if context.attempt <= 2:
        raise Snooze(0)
    return context.attempt


@task(takes_context=True)
def cooperative(context: TaskContext[Any, Any]) -> str:
    """Record the run, then work in small steps, stopping when a cancel is requested."""
    Execution.objects.create(
        result_id=context.task_result.id, attempt=context.attempt, pid=os.getpid()
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        raise_if_cancelled()
        time.sleep(0.02)
    return "never asked to stop"


@task(takes_context=True, timeout=0.5)
def hang_recorded(context: TaskContext[Any, Any]) -> None:
    """Record the run (and the process), then outlive the timeout."""
    Execution.objects.create(
        result_id=context.task_result.id, attempt=context.attempt, pid=os.getpid()
    )
    time.sleep(3600)


@task(takes_context=True)
async def async_started_sleep(context: TaskContext[Any, Any], seconds: float) -> float:
    await Execution.objects.acreate(
        result_id=context.task_result.id, attempt=context.attempt, pid=os.getpid()
    )
    await asyncio.sleep(seconds)
    return seconds


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


# -- flow control (ConveyorTask's unique and concurrency options) ---------------------------


@task(unique=True)
def sync_account(account: int) -> int:
    return account


@task(unique={"states": ["READY", "RUNNING", "SUCCESSFUL"]})
def once_ever(account: int) -> int:
    return account


def by_account(account: int, **kwargs: Any) -> int:
    return account


@task(concurrency={"limit": 2, "key": by_account})
def call_partner(account: int, label: str = "", sleep: float = 0.0) -> int:
    """Record when it ran, for tests that check no more than two ran at once per account."""
    started = time.time()
    if sleep:
        time.sleep(sleep)
    Execution.objects.create(
        result_id="", attempt=0, pid=os.getpid(), label=f"{label}|{started}|{time.time()}"
    )
    return account


@task(rate_limit="3/s")
def rate_limited(label: str = "") -> float:
    """Record its start, for tests that check the rate of starts."""
    started = time.time()
    Execution.objects.create(result_id="", attempt=0, pid=os.getpid(), label=f"rate|{started}")
    return started
