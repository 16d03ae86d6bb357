"""The retry policy of each task, decided by the store on every database: the task's own
options, then its queue's, then the backend's; a policy that fails ends the task."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from conveyor.compat import TaskError, TaskResultStatus
from conveyor.exceptions import RetryPolicyError, TaskCancelled, WorkerLost
from conveyor.failures import class_path, error_from_message
from conveyor.models import TaskRecord
from conveyor.store import Engine, Outcome
from tests.factories import claim_all, enqueue
from tests.operations.helpers import boom
from tests.tasksapp import tasks
from tests.tasksapp.tasks import BACKOFF_CALLS, badly_retried, flaky, nonsense_retried, patient

pytestmark = pytest.mark.django_db

READY, FAILED = TaskResultStatus.READY, TaskResultStatus.FAILED


def fail_claimed(store: Engine, error: TaskError | None = None) -> tuple[TaskRecord, Any]:
    (record,) = claim_all(store)
    exception = ValueError("boom")
    outcome = Outcome(record, FAILED, error=error or boom(), exception=exception)
    (written,) = store.finish(worker_id=record.worker_id, outcomes=[outcome])
    return TaskRecord.objects.get(pk=record.pk), written


def test_the_task_s_max_attempts_and_backoff_override_queue_and_backend(
    task_options: Any,
) -> None:
    backend = task_options(max_attempts=1, queues={"default": {"max_attempts": 1}})
    BACKOFF_CALLS.clear()
    enqueue(flaky, 3)
    for attempt in (1, 2):
        row, written = fail_claimed(backend.store)
        assert (row.status, row.attempt_count, written.status) == (READY, attempt, READY)
    row, written = fail_claimed(backend.store)
    assert (row.status, written.status) == (FAILED, FAILED)  # three attempts: the task's own
    # Called after each failure that had attempts left, with the failed attempt's error last.
    assert BACKOFF_CALLS == [
        ("ValueError", 1, ["builtins.ValueError"]),
        ("ValueError", 2, ["builtins.ValueError", "builtins.ValueError"]),
    ]


def test_a_backoff_s_delay_is_added_to_the_database_clock(task_options: Any) -> None:
    backend = task_options(max_attempts=1, backoff_factor=0)
    enqueue(patient)
    before = backend.store.database_now()
    row, written = fail_claimed(backend.store)
    assert row.status == READY
    assert before + timedelta(minutes=59) < row.available_after < before + timedelta(minutes=61)
    assert written.available_after == row.available_after


def test_the_queue_s_backoff_overrides_the_backend_s_dotted_path(task_options: Any) -> None:
    backend = task_options(
        max_attempts=2,
        backoff="tests.tasksapp.tasks.hour_backoff",
        queues={"low_priority": {"backoff": "tests.tasksapp.tasks.noted_backoff"}},
    )
    before = backend.store.database_now()
    enqueue(tasks.low, 1)
    row, _ = fail_claimed(backend.store)
    assert row.available_after < before + timedelta(minutes=1)  # the queue's: no delay
    TaskRecord.objects.all().delete()
    enqueue()
    row, _ = fail_claimed(backend.store)
    assert row.available_after > before + timedelta(minutes=59)  # the backend's: an hour


def test_a_queue_s_own_backoff_factor_is_not_overridden_by_the_backend_s_backoff(
    task_options: Any,
) -> None:
    backend = task_options(
        max_attempts=2,
        backoff="tests.tasksapp.tasks.hour_backoff",
        queues={"low_priority": {"backoff_factor": 0}},
    )
    before = backend.store.database_now()
    enqueue(tasks.low, 1)
    row, _ = fail_claimed(backend.store)
    assert (row.status, row.available_after < before + timedelta(minutes=1)) == (READY, True)


@pytest.mark.parametrize(
    ("task", "why"),
    [
        (badly_retried, "RuntimeError: the policy has a bug"),
        (nonsense_retried, "returned 'soon'; expected seconds, a timedelta or None"),
    ],
)
def test_a_policy_that_fails_ends_the_task_with_the_reason_as_its_error(
    backend: Any, task: Any, why: str
) -> None:
    enqueue(task)
    row, written = fail_claimed(backend.store)
    assert (row.status, written.status) == (FAILED, FAILED)
    (error,) = backend.get_result(str(row.pk)).errors
    assert error.exception_class is RetryPolicyError
    assert why in error.traceback
    assert "ValueError: boom" in error.traceback  # the attempt's own error is kept
    assert error.traceback.strip().splitlines()[-1].startswith(class_path(RetryPolicyError))


def test_recovery_applies_the_task_s_own_policy(task_options: Any) -> None:
    backend = task_options(max_attempts=1)
    enqueue(patient)
    (record,) = claim_all(backend.store, "gone")
    (written,) = backend.store.recover_lost(recovered_by="rescuer")
    assert written.status == READY
    row = TaskRecord.objects.get(pk=record.pk)
    assert row.available_after > backend.store.database_now() + timedelta(minutes=59)
    (error,) = backend.get_result(str(record.pk)).errors
    assert error.exception_class is WorkerLost


def test_a_cancellation_is_never_retried(task_options: Any) -> None:
    backend = task_options(max_attempts=5, backoff_factor=0)
    enqueue()
    row, written = fail_claimed(backend.store, error_from_message(TaskCancelled, "stop"))
    assert (row.status, written.status) == (FAILED, FAILED)
