"""Per-task controls in a real worker: each task's retry policy, and timeouts that never
cost the worker its capacity."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from django.db import connection

import conveyor
from conveyor.compat import TaskResult, TaskResultStatus, default_task_backend
from conveyor.exceptions import RetryPolicyError, TaskCancelled, TaskTimeout
from conveyor.failures import class_path
from conveyor.models import Attempt, TaskRecord, WorkerRecord
from tests.conftest import wait_until
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import (
    add,
    async_hang,
    async_started_sleep,
    badly_retried,
    cooperative,
    flaky,
    hang,
    hang_recorded,
    record,
    rendezvous,
    snooze_twice,
)

pytestmark = pytest.mark.process

SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED
CANCELLED = class_path(TaskCancelled)


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
    options = {"max_attempts": 1, "heartbeat_interval": 0.5, "worker_timeout": 5}
    worker = start_worker("--concurrency", "2", options=options)
    for result in (hung, cancelled):
        wait_for_status(result.id, FAILED, f"{result.task.name} to time out")
        result.refresh()
        (error,) = result.errors
        assert error.exception_class is TaskTimeout, error.traceback
        assert "longer than its timeout of 0.5s" in error.traceback
    assert "CancelledError" in cancelled.errors[0].traceback
    # The sync task's thread still sleeps; two tasks that need each other still run together.
    pair = [rendezvous.enqueue("pair", 2) for _ in range(2)]
    for paired in pair:
        wait_for_status(paired.id, SUCCESSFUL, "both tasks to run at once")
    assert "timed out after 0.5s; its thread is stuck (stuck_threads=1)" in worker.log()
    # The registry shows it, for conveyor_status and --check --max-stuck.
    wait_until(
        lambda: WorkerRecord.objects.filter(stuck_threads=1).exists(),
        what="the stuck thread in the registry",
    )
    assert worker.alive()


# -- snooze ----------------------------------------------------------------------------------


def test_a_snooze_runs_the_task_again_without_spending_its_attempts(start_worker: Any) -> None:
    result = snooze_twice.enqueue()
    worker = start_worker("--oneshot", options={"max_attempts": 1})
    assert worker.wait() == 0, worker.log()
    result.refresh()
    assert (result.status, result.return_value, result.errors) == (SUCCESSFUL, 3, [])
    assert history(result.id) == [("SNOOZED", ""), ("SNOOZED", ""), ("SUCCESSFUL", "")]


# -- stopping a running task -------------------------------------------------------------------

FAST = {"heartbeat_interval": 0.5, "worker_timeout": 5, "max_attempts": 3, "backoff_factor": 0}


def started(result_id: str) -> bool:
    return Execution.objects.filter(result_id=result_id, label="").exists()


def cancel_when_started(result_id: str) -> None:
    wait_until(lambda: started(result_id), what="the task to start")
    assert conveyor.cancel(result_id, by="test") == conveyor.CancelAnswer.REQUESTED


def assert_cancelled(result_id: str, *, within: float) -> TaskResult[Any, Any]:
    wait_until(
        lambda: TaskRecord.objects.get(pk=result_id).status == FAILED,
        timeout=within,
        what="the task to be cancelled",
    )
    # Never retried, whatever its max_attempts: one attempt, ended by the cancel.
    assert history(result_id) == [("FAILED", CANCELLED)]
    result: TaskResult[Any, Any] = default_task_backend.get_result(result_id)
    return result


@pytest.mark.parametrize(
    ("task", "arguments", "isolation", "raised"),
    [
        (async_started_sleep, {"seconds": 3600}, "thread", "CancelledError"),
        (cooperative, {}, "thread", "TaskCancelled: The task was cancelled while running"),
        (record, {"sleep": 3600}, "process", "its child process was killed"),
    ],
    ids=["async", "cooperative-sync", "sync-in-process-mode"],
)
def test_a_running_task_is_stopped_and_never_retried(
    start_worker: Any, task: Any, arguments: dict[str, Any], isolation: str, raised: str
) -> None:
    result = task.enqueue(**arguments)
    after = add.enqueue(1, 1)
    start_worker("--isolation", isolation, options=FAST)
    cancel_when_started(result.id)
    # NOTIFY on PostgreSQL, a heartbeat interval (0.5 s) elsewhere; generous for a busy CI.
    cancelled = assert_cancelled(result.id, within=10)
    assert raised in cancelled.errors[0].traceback
    wait_for_status(after.id, SUCCESSFUL, "the next task")


def test_a_cancel_racing_the_task_s_own_end_leaves_one_outcome(start_worker: Any) -> None:
    result = record.enqueue(sleep=0.2)
    start_worker(options=FAST)
    wait_until(lambda: started(result.id), what="the task to start")
    answer = conveyor.cancel(result.id, by="test")
    wait_until(lambda: TaskRecord.objects.get(pk=result.id).status in (SUCCESSFUL, FAILED))
    ended = history(result.id)
    if answer == conveyor.CancelAnswer.FINISHED:
        assert ended == [("SUCCESSFUL", "")]
    else:
        # A cancel requested while the attempt ran does not undo its success.
        assert answer == conveyor.CancelAnswer.REQUESTED
        assert ended in ([("SUCCESSFUL", "")], [("FAILED", CANCELLED)])
    assert TaskRecord.objects.get(pk=result.id).status == ended[0][0]


# -- process isolation -------------------------------------------------------------------------


def test_in_process_mode_a_task_past_its_timeout_is_killed_and_the_slot_serves_on(
    start_worker: Any,
) -> None:
    hung = hang_recorded.enqueue()
    worker = start_worker(
        "--isolation", "process", "--concurrency", "2", options={"max_attempts": 1}
    )
    wait_for_status(hung.id, FAILED, "the task to time out")
    hung.refresh()
    (error,) = hung.errors
    assert error.exception_class is TaskTimeout
    (run,) = Execution.objects.filter(result_id=hung.id, label="")
    assert run.pid != worker.pid  # it ran in a child process ...
    wait_until(lambda: not process_exists(run.pid), timeout=10, what="the child to be gone")
    pair = [rendezvous.enqueue("pair", 2) for _ in range(2)]  # ... and both slots serve on
    for paired in pair:
        wait_for_status(paired.id, SUCCESSFUL, "both tasks to run at once")
    assert "stuck" not in worker.log()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's; elsewhere: a heartbeat"
)
def test_on_postgresql_a_worker_learns_of_a_cancel_within_a_second(start_worker: Any) -> None:
    result = async_started_sleep.enqueue(3600)
    # A heartbeat far away: only the notification can tell the worker in time.
    start_worker(options={**FAST, "heartbeat_interval": 30, "worker_timeout": 90})
    wait_until(lambda: started(result.id), what="the task to start")
    asked = time.monotonic()
    assert conveyor.cancel(result.id, by="test") == conveyor.CancelAnswer.REQUESTED
    assert_cancelled(result.id, within=5)
    assert time.monotonic() - asked < 1.5
