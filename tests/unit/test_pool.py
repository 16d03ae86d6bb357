"""The execution pool's slots and timeouts: sync tasks hold thread slots and coroutines
async slots, and the claim limit is what both kinds leave free; a sync task past its
deadline is recorded there and then, and its slot gets a new thread; a coroutine is
cancelled."""

from __future__ import annotations

import queue
import time
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


def test_coroutines_hold_async_slots_and_leave_the_thread_slots_free() -> None:
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    pool = ExecutionPool(1, outcomes.put, async_concurrency=3)
    try:
        assert pool.free() == 1
        for pk in (1, 2):
            pool.submit(record(pk, "async_hang", 3600), [])
        # One thread slot, one async slot left: a claim of one may be of either kind.
        assert pool.free() == 1
        pool.submit(record(3, "async_hang", 3600), [])
        assert pool.free() == 0  # the async slots are full: nothing may be claimed
        with pytest.raises(RuntimeError, match="no free async slot"):
            pool.submit(record(4, "async_hang", 3600), [])
        pool.submit(record(5, "add", 1, 2), [])  # the thread slot was free all along
        assert next_outcome(outcomes).return_value == 3
        for pk in (1, 2, 3):
            assert pool.cancel(pk, "test")
        ended = {next_outcome(outcomes).record.pk for _ in range(3)}
        assert ended == {1, 2, 3}
        assert pool.free() == 1
        assert pool.idle()
    finally:
        pool.close()


def test_a_sync_task_in_the_only_thread_slot_stops_the_claims() -> None:
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    pool = ExecutionPool(1, outcomes.put, async_concurrency=1000)
    try:
        pool.submit(record(1, "sleep", 0.3), [])
        # Async slots are free, but a claimed task could be sync: none may be claimed.
        assert pool.free() == 0
        with pytest.raises(RuntimeError, match="no free thread slot"):
            pool.submit(record(2, "add", 1, 2), [])
        assert next_outcome(outcomes).record.pk == 1
        assert pool.free() == 1
    finally:
        pool.close()


def test_many_coroutines_await_at_once_beside_one_thread_slot() -> None:
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    pool = ExecutionPool(1, outcomes.put, async_concurrency=200)
    try:
        for pk in range(1, 201):
            pool.submit(record(pk, "async_sleep", 1.0), [])
        assert pool.free() == 0
        # Two hundred one-second sleeps overlap: all end long before 200 seconds.
        ended = [next_outcome(outcomes) for _ in range(200)]
        assert {o.status for o in ended} == {TaskResultStatus.SUCCESSFUL}
        assert pool.free() == 1
    finally:
        pool.close()


def test_a_hard_stop_frees_every_slot_of_both_kinds() -> None:
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    pool = ExecutionPool(1, outcomes.put, async_concurrency=2)
    try:
        pool.submit(record(1, "async_sleep", 0.1), [])
        pool.submit(record(2, "sleep", 0.1), [])
        assert pool.free() == 0
        assert {r.pk for r in pool.abandon()} == {1, 2}
        assert pool.free() == 1
        time.sleep(0.5)  # both end, and their outcomes are discarded
        assert outcomes.empty()
    finally:
        pool.close()
