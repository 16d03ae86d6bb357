"""Snoozes, cancel requests of running tasks and stuck threads in the store, on every
database: each write fenced like every other."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections

from conveyor.backend import DatabaseBackend
from conveyor.cancellation import CancelAnswer, cancel
from conveyor.compat import TaskResultStatus
from conveyor.exceptions import SnoozeLimit, TaskCancelled, WorkerLost
from conveyor.failures import class_path
from conveyor.models import Attempt, TaskRecord, WorkerRecord
from conveyor.store import Engine, Outcome, QueueFilter
from tests.factories import claim_all, enqueue
from tests.operations.helpers import boom, claim_due, succeed_once

pytestmark = pytest.mark.django_db

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED
CANCELLED = class_path(TaskCancelled)


def snooze(store: Engine, record: TaskRecord, seconds: float = 0) -> Any:
    outcome = Outcome(record, READY, snooze=timedelta(seconds=seconds))
    (written,) = store.finish(worker_id=record.worker_id, outcomes=[outcome])
    return written


def attempts(pk: int) -> list[tuple[str, str]]:
    rows = Attempt.objects.filter(task_id=pk).select_related("error").order_by("id")
    return [(a.status, a.error.exception_class_path if hasattr(a, "error") else "") for a in rows]


def test_a_snooze_runs_the_task_again_later_without_spending_an_attempt(
    task_options: Any,
) -> None:
    backend = task_options(max_attempts=1)
    row = enqueue()
    (claimed,) = claim_all(backend.store)
    before = backend.store.database_now()
    written = snooze(backend.store, claimed, seconds=3600)
    assert written.status == READY
    task = TaskRecord.objects.get(pk=row.pk)
    assert (task.status, task.snoozes, task.worker_id) == (READY, 1, "")
    assert task.available_after > before + timedelta(minutes=59)
    assert attempts(row.pk) == [("SNOOZED", "")]
    assert backend.get_result(str(row.pk)).errors == []  # a snooze is not an error
    # The one attempt max_attempts allows is still there: a failure now is final.
    TaskRecord.objects.filter(pk=row.pk).update(available_after=before)
    (again,) = claim_due(backend.store, "w1")
    (failed,) = backend.store.finish(
        worker_id="w1", outcomes=[Outcome(again, FAILED, error=boom())]
    )
    assert failed.status == FAILED
    assert attempts(row.pk) == [("SNOOZED", ""), ("FAILED", "builtins.ValueError")]


def test_a_snooze_past_max_snoozes_is_a_failure(task_options: Any) -> None:
    backend = task_options(max_attempts=1, max_snoozes=1)
    row = enqueue()
    snooze(backend.store, claim_all(backend.store)[0])
    written = snooze(backend.store, claim_due(backend.store, "w1")[0])
    assert written.status == FAILED
    assert attempts(row.pk) == [("SNOOZED", ""), ("FAILED", class_path(SnoozeLimit))]


def test_cancelling_a_ready_task_is_immediate_and_a_running_one_is_requested(
    backend: DatabaseBackend,
) -> None:
    ready = enqueue()
    assert cancel(str(ready.pk)) == CancelAnswer.CANCELLED
    assert TaskRecord.objects.get(pk=ready.pk).status == FAILED
    running = enqueue()
    claim_all(backend.store, "w1")
    assert cancel(str(running.pk), by="ops") == CancelAnswer.REQUESTED
    assert backend.store.cancel_requests("w1") == {running.pk: "ops"}
    assert backend.store.cancel_requests("w2") == {}
    assert TaskRecord.objects.get(pk=running.pk).status == RUNNING  # its worker decides
    done = succeed_once(backend.store)
    assert cancel(str(done.pk)) == CancelAnswer.FINISHED


def test_request_cancel_refuses_tasks_that_are_not_running(backend: DatabaseBackend) -> None:
    finished = succeed_once(backend.store)
    ready = enqueue()
    applied = backend.store.request_cancel([ready.pk, finished.pk], requested_by="ops")
    assert (applied.changed, applied.refused) == ((), tuple(sorted([ready.pk, finished.pk])))


@pytest.mark.parametrize(
    ("outcome", "final", "history"),
    [
        ("success", SUCCESSFUL, [("SUCCESSFUL", "")]),
        ("failure", FAILED, [("FAILED", CANCELLED)]),
        ("snooze", FAILED, [("FAILED", CANCELLED)]),
    ],
)
def test_after_a_cancel_request_a_success_stands_and_anything_else_ends_the_task(
    task_options: Any, outcome: str, final: str, history: list[tuple[str, str]]
) -> None:
    backend = task_options(max_attempts=5, backoff_factor=0)
    row = enqueue()
    (claimed,) = claim_all(backend.store, "w1")
    backend.store.request_cancel([row.pk], requested_by="ops")
    ended = {
        "success": Outcome(claimed, SUCCESSFUL, return_value=3),
        "failure": Outcome(claimed, FAILED, error=boom()),
        "snooze": Outcome(claimed, READY, snooze=timedelta(0)),
    }[outcome]
    (written,) = backend.store.finish(worker_id="w1", outcomes=[ended])
    assert written.status == final
    assert TaskRecord.objects.get(pk=row.pk).status == final
    assert attempts(row.pk) == history
    if outcome == "failure":
        (error,) = backend.get_result(str(row.pk)).errors
        assert "ValueError: boom" in error.traceback  # the attempt's own error is kept
        assert error.traceback.endswith(
            "conveyor.exceptions.TaskCancelled: The task was cancelled "
            "(requested by ops while the attempt ran)\n"
        )
        assert written.outcome.error == error


def test_a_lost_worker_s_task_whose_cancel_was_requested_is_not_retried(
    task_options: Any,
) -> None:
    backend = task_options(max_attempts=5, backoff_factor=0)
    row = enqueue()
    claim_all(backend.store, "gone")
    backend.store.request_cancel([row.pk], requested_by="ops")
    (written,) = backend.store.recover_lost(recovered_by="rescuer")
    assert written.status == FAILED
    (error,) = backend.get_result(str(row.pk)).errors
    assert error.exception_class is TaskCancelled
    assert class_path(WorkerLost) in error.traceback


def test_a_cancel_racing_the_task_s_own_finish_leaves_exactly_one_outcome(
    task_options: Any, transactional_db: None
) -> None:
    backend = task_options(max_attempts=5, backoff_factor=0)
    for _ in range(5):
        row = enqueue()
        (claimed,) = claim_all(backend.store, "w1")
        barrier = threading.Barrier(2)

        def finish(claimed: TaskRecord = claimed, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                backend.store.finish(
                    worker_id="w1", outcomes=[Outcome(claimed, FAILED, error=boom())]
                )
            finally:
                connections.close_all()

        thread = threading.Thread(target=finish)
        thread.start()
        barrier.wait()
        answer = cancel(str(row.pk), by="ops")
        thread.join(30)
        task = TaskRecord.objects.get(pk=row.pk)
        history = attempts(row.pk)
        if answer == CancelAnswer.REQUESTED:
            # The request came first: the failure ended the task.
            assert (task.status, history) == (FAILED, [("FAILED", CANCELLED)])
        else:
            # The failure came first and scheduled a retry; the cancel then ended the READY
            # task at once, with an attempt of its own.
            assert answer == CancelAnswer.CANCELLED
            assert task.status == FAILED
            assert history == [("FAILED", "builtins.ValueError"), ("FAILED", CANCELLED)]


def test_report_stuck_is_read_with_the_registry(backend: DatabaseBackend) -> None:
    backend.store.register_worker(worker_id="w1", host="h", pid=1, queues=QueueFilter())
    backend.store.report_stuck("w1", 2)
    assert WorkerRecord.objects.get(worker_id="w1").stuck_threads == 2
    (worker,) = backend.store.workers()
    assert worker.stuck_threads == 2


def test_cancel_source_is_a_notification_where_the_database_has_them(
    backend: DatabaseBackend,
) -> None:
    source = backend.store.cancel_source()
    assert (source is not None) == (backend.store.wakeup_source() is not None)
