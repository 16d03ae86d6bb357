"""The execution pool's timeouts: a sync task past its deadline is recorded there and then,
and its slot gets a new thread; a coroutine is cancelled."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from conveyor.compat import TaskResultStatus, task_started
from conveyor.exceptions import TaskTimeout
from conveyor.failures import class_path
from conveyor.models import TaskRecord
from conveyor.store import Outcome
from conveyor.worker.pool import ExecutionPool
from tests.conftest import wait_until

TIMEOUT = timedelta(seconds=0.2)


@pytest.fixture(autouse=True)
def no_signal_rows() -> Iterator[None]:
    """The test app's receivers write rows; these tests run without a database."""
    from tests.tasksapp.apps import record_signal

    task_started.disconnect(dispatch_uid="tasksapp.started")
    yield
    task_started.connect(record_signal, dispatch_uid="tasksapp.started")


def record(pk: int, name: str, *args: Any) -> TaskRecord:
    return TaskRecord(
        pk=pk,
        task_path=f"tests.tasksapp.tasks.{name}",
        backend_name="default",
        queue_name="default",
        arguments={"args": list(args), "kwargs": {}},
        status=TaskResultStatus.RUNNING,
        attempt_count=1,
        worker_id="w1",
    )


def timeout_of(task: TaskRecord) -> timedelta | None:
    return TIMEOUT if "hang" in task.task_path else None


def next_outcome(outcomes: queue.SimpleQueue[Outcome]) -> Outcome:
    return outcomes.get(timeout=10)


def test_a_hung_sync_task_is_recorded_at_its_deadline_and_its_slot_serves_on() -> None:
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    pool = ExecutionPool(1, outcomes.put, timeout_of=timeout_of)
    try:
        pool.submit(record(1, "hang", 1.0), [])
        assert pool.free() == 0
        wait_until(lambda: pool.expire() is None, timeout=5, what="the deadline")
        timed_out = next_outcome(outcomes)
        assert (timed_out.record.pk, timed_out.status) == (1, TaskResultStatus.FAILED)
        assert timed_out.error is not None
        assert timed_out.error.exception_class_path == class_path(TaskTimeout)
        assert "longer than its timeout of 0.2s" in timed_out.error.traceback
        assert [s.task_id for s in pool.stuck()] == [1]
        # Full capacity: the next task runs at once on a new thread.
        assert pool.free() == 1
        pool.submit(record(2, "add", 1, 2), [])
        done = next_outcome(outcomes)
        assert (done.record.pk, done.return_value) == (2, 3)
        # The stuck thread comes back: its late result is discarded and it ends.
        wait_until(lambda: not pool.stuck(), timeout=10, what="the stuck thread to return")
        assert outcomes.empty()
    finally:
        pool.close()


def test_a_coroutine_past_its_deadline_is_cancelled() -> None:
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    pool = ExecutionPool(1, outcomes.put, timeout_of=timeout_of)
    try:
        pool.submit(record(1, "async_hang", 3600), [])
        cancelled = next_outcome(outcomes)
        assert cancelled.error is not None
        assert cancelled.error.exception_class_path == class_path(TaskTimeout)
        assert "CancelledError" in cancelled.error.traceback  # it was cancelled, not left
        assert pool.free() == 1
        assert not pool.stuck()
    finally:
        pool.close()
