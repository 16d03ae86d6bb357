"""The worker as a real process: it runs tasks, survives every failure, and keeps going."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.compat import TaskResult, TaskResultStatus
from conveyor.exceptions import MalformedTask
from conveyor.models import TaskRecord
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import (
    add,
    async_add,
    async_record,
    echo,
    exit_task,
    fail,
    fail_until,
    keyboard_interrupt,
    record,
    unserialisable_return,
)

pytestmark = pytest.mark.process


def run_oneshot(start_worker: Any, *args: str, options: dict[str, Any] | None = None) -> Any:
    worker = start_worker("--oneshot", *args, options=options)
    assert worker.wait() == 0, worker.log()
    return worker


def test_runs_sync_and_async_tasks_and_stores_results(start_worker: Any) -> None:
    results: list[TaskResult[Any, Any]] = [
        add.enqueue(1, 2),
        async_add.enqueue(3, 4),
        echo.enqueue("a", k={"x": [1]}),
    ]
    run_oneshot(start_worker)
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
        assert result.started_at is not None
        assert result.finished_at is not None
        assert result.last_attempted_at == result.started_at
        assert len(result.worker_ids) == 1
    assert [r.return_value for r in results] == [3, 7, {"args": ["a"], "kwargs": {"k": {"x": [1]}}}]


@pytest.mark.parametrize(
    ("task", "exception_path"),
    [
        (fail, "builtins.ValueError"),
        (exit_task, "builtins.SystemExit"),
        (keyboard_interrupt, "builtins.KeyboardInterrupt"),
        (unserialisable_return, "builtins.TypeError"),
    ],
)
def test_every_failure_is_a_failed_attempt_and_the_worker_goes_on(
    start_worker: Any, task: Any, exception_path: str
) -> None:
    failing = task.enqueue()
    after = add.enqueue(20, 22)
    run_oneshot(start_worker)
    failing.refresh()
    after.refresh()
    assert failing.status == TaskResultStatus.FAILED
    (error,) = failing.errors
    assert error.exception_class_path == exception_path
    assert "Traceback" in error.traceback
    assert after.status == TaskResultStatus.SUCCESSFUL
    assert after.return_value == 42


def test_a_task_path_that_no_longer_imports_fails_with_import_error(start_worker: Any) -> None:
    result = add.enqueue(1, 1)
    TaskRecord.objects.filter(pk=result.id).update(task_path="tests.tasksapp.tasks.removed")
    after = add.enqueue(1, 2)
    run_oneshot(start_worker)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == TaskResultStatus.FAILED
    error = row.attempts.get().error
    assert error.exception_class_path == "builtins.ImportError"
    assert "removed" in error.traceback
    after.refresh()
    assert after.status == TaskResultStatus.SUCCESSFUL


@pytest.mark.parametrize(
    ("arguments", "exception_path", "message"),
    [
        ({"args": [1], "kwargs": {"c": 3}}, "builtins.TypeError", "unexpected keyword argument"),
        ({"args": [1, 2, 3, 4], "kwargs": {}}, "builtins.TypeError", "positional argument"),
        (["not", "an", "object"], f"{MalformedTask.__module__}.MalformedTask", "JSON object"),
        ({"args": "1, 2", "kwargs": {}}, f"{MalformedTask.__module__}.MalformedTask", "'args'"),
    ],
)
def test_poison_arguments_fail_the_attempt_not_the_worker(
    start_worker: Any, arguments: Any, exception_path: str, message: str
) -> None:
    result = add.enqueue(1, 1)
    TaskRecord.objects.filter(pk=result.id).update(arguments=arguments)
    after = add.enqueue(2, 2)
    run_oneshot(start_worker)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == TaskResultStatus.FAILED
    error = row.attempts.get().error
    assert error.exception_class_path == exception_path
    assert message in error.traceback
    after.refresh()
    assert after.return_value == 4


def test_tasks_of_unconfigured_queues_are_left_for_a_worker_that_serves_them(
    start_worker: Any,
) -> None:
    result = add.enqueue(1, 1)
    TaskRecord.objects.filter(pk=result.id).update(queue_name="retired")
    run_oneshot(start_worker)
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.status, row.attempt_count) == (TaskResultStatus.READY, 0)


def test_retries_see_the_attempt_number_and_succeed(start_worker: Any) -> None:
    result = fail_until.enqueue(succeed_on=3)
    run_oneshot(start_worker, options={"max_attempts": 5, "backoff_factor": 0})
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"] * 2
    assert "attempt 1 fails" in result.errors[0].traceback
    assert "attempt 2 fails" in result.errors[1].traceback
    runs = Execution.objects.filter(result_id=result.id, label="")
    assert list(runs.values_list("attempt", flat=True)) == [1, 2, 3]


def test_retries_stop_at_max_attempts(start_worker: Any) -> None:
    result = fail_until.enqueue(succeed_on=10)
    worker = run_oneshot(start_worker, options={"max_attempts": 2, "backoff_factor": 0})
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 2
    assert len(result.errors) == 2
    # Every failed attempt is in the worker's log with its message; the last with its
    # traceback.
    log = worker.log()
    assert (
        f"Task id={result.id} path=tests.tasksapp.tasks.fail_until attempt=1 failed: "
        "builtins.ValueError: attempt 1 fails; retry at "
    ) in log
    final = (
        f"Task id={result.id} path=tests.tasksapp.tasks.fail_until failed after attempt=2: "
        "builtins.ValueError: attempt 2 fails\nTraceback (most recent call last):"
    )
    assert final in log


def test_backoff_delays_the_retry(start_worker: Any) -> None:
    result = fail_until.enqueue(succeed_on=2)
    run_oneshot(start_worker, options={"max_attempts": 2, "backoff_factor": 3600})
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.status, row.attempt_count) == (TaskResultStatus.READY, 1)
    assert row.last_attempted_at is not None
    assert (row.available_after - row.last_attempted_at).total_seconds() >= 3599


def test_context_attempt_starts_at_one(start_worker: Any) -> None:
    sync_result, async_result = record.enqueue("sync"), async_record.enqueue("async")
    run_oneshot(start_worker)
    sync_result.refresh()
    async_result.refresh()
    assert sync_result.return_value == 1
    assert async_result.return_value == 1  # type: ignore[comparison-overlap]


def test_signals_fire_in_the_worker_with_the_current_result(start_worker: Any) -> None:
    ok = add.enqueue(1, 1)
    failed = fail.enqueue()
    retried = fail_until.enqueue(succeed_on=2)
    run_oneshot(start_worker, options={"max_attempts": 2, "backoff_factor": 0})

    def labels(result_id: str) -> list[str]:
        rows = Execution.objects.filter(result_id=result_id, label__startswith="signal:")
        return [f"{label}@{attempt}" for label, attempt in rows.values_list("label", "attempt")]

    assert labels(ok.id) == ["signal:started:RUNNING:0@1", "signal:finished:SUCCESSFUL:0@1"]
    assert labels(failed.id) == [
        "signal:started:RUNNING:0@1",
        "signal:started:RUNNING:1@2",
        "signal:finished:FAILED:2@2",
    ]
    # task_finished fires once the task is final; a scheduled retry is not a finish.
    assert labels(retried.id) == [
        "signal:started:RUNNING:0@1",
        "signal:started:RUNNING:1@2",
        "signal:finished:SUCCESSFUL:1@2",
    ]
