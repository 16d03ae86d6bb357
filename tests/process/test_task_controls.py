"""Per-task controls in a real worker: each task's retry policy, and timeouts that never
cost the worker its capacity."""

from __future__ import annotations

from typing import Any

import pytest
from django.tasks import TaskResultStatus

from conveyor.exceptions import RetryPolicyError, TaskTimeout
from conveyor.models import Attempt, TaskRecord
from tests.conftest import wait_until
from tests.tasksapp.tasks import add, async_hang, badly_retried, flaky, hang, rendezvous

pytestmark = pytest.mark.process

SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def history(result_id: str) -> list[tuple[str, str]]:
    attempts = Attempt.objects.filter(task_id=int(result_id)).select_related("error").order_by("id")
    return [
        (a.status, a.error.exception_class_path if hasattr(a, "error") else "") for a in attempts
    ]


def wait_for_status(result_id: str, wanted: str, what: str) -> None:
    wait_until(lambda: TaskRecord.objects.get(pk=result_id).status == wanted, what=what)


def test_a_task_s_own_max_attempts_and_backoff_override_queue_and_backend(
    start_worker: Any,
) -> None:
    # The backend and the queue allow one attempt; the task asks for three without delay.
    options = {"max_attempts": 1, "backoff_factor": 60, "queues": {"default": {"max_attempts": 1}}}
    result = flaky.enqueue(3)
    worker = start_worker("--oneshot", options=options)
    assert worker.wait() == 0, worker.log()
    result.refresh()
    assert (result.status, result.return_value) == (SUCCESSFUL, 3)
    assert [s for s, _ in history(result.id)] == ["FAILED", "FAILED", "SUCCESSFUL"]


def test_a_policy_that_raises_fails_its_task_and_not_the_worker(start_worker: Any) -> None:
    failing, after = badly_retried.enqueue(), add.enqueue(2, 3)
    worker = start_worker("--oneshot")
    assert worker.wait() == 0, worker.log()
    failing.refresh()
    after.refresh()
    assert failing.status == FAILED
    (error,) = failing.errors
    assert error.exception_class is RetryPolicyError
    assert "the policy has a bug" in error.traceback
    assert "ValueError: the task's own error" in error.traceback
    assert (after.status, after.return_value) == (SUCCESSFUL, 5)


def test_tasks_past_their_timeout_fail_and_the_worker_keeps_its_capacity(
    start_worker: Any,
) -> None:
    hung, cancelled = hang.enqueue(), async_hang.enqueue()
    worker = start_worker("--concurrency", "2", options={"max_attempts": 1})
    for result in (hung, cancelled):
        wait_for_status(result.id, FAILED, f"{result.task.name} to time out")
        result.refresh()
        (error,) = result.errors
        assert error.exception_class is TaskTimeout, error.traceback
        assert "longer than its timeout of 0.5s" in error.traceback
    assert "CancelledError" in cancelled.errors[0].traceback
    # The sync task's thread still sleeps; two tasks that need each other still run together.
    pair = [rendezvous.enqueue("pair", 2) for _ in range(2)]
    for result in pair:
        wait_for_status(result.id, SUCCESSFUL, "both tasks to run at once")
    assert "its thread is stuck (stuck_threads=1)" in worker.log()
    assert worker.alive()
