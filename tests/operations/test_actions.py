"""Operator actions on the store, on every database: retry, run now, cancel."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.exceptions import TaskCancelled
from conveyor.models import Attempt, TaskRecord
from conveyor.store import Outcome
from tests.conftest import wait_until
from tests.factories import ago, claim_all, enqueue, later
from tests.operations.helpers import claim_due, fail_once, finish_failed, race
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import fail_until, record

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED
CANCELLED_PATH = "conveyor.exceptions.TaskCancelled"


@pytest.mark.django_db
class TestRetry:
    def test_a_failed_task_becomes_ready_now_with_a_fresh_budget_and_its_history(
        self, backend: DatabaseBackend
    ) -> None:
        row = fail_once(backend.store)
        assert (row.status, row.attempt_count) == (FAILED, 1)
        applied = backend.store.retry([row.pk])
        assert applied.changed == (row.pk,)
        assert applied.refused == ()
        stored = TaskRecord.objects.get(pk=row.pk)
        assert (stored.status, stored.attempt_count, stored.worker_id) == (READY, 0, "")
        assert stored.finished_at is None
        assert stored.available_after <= backend.store.database_now()
        assert Attempt.objects.filter(task_id=row.pk).count() == 1
        result = backend.get_result(str(row.pk))
        assert result.status == READY
        assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"]
        assert result.worker_ids == ["w1"]

    def test_the_retried_task_gets_max_attempts_again(self, backend: DatabaseBackend) -> None:
        # low_priority allows 3 attempts: spend them all, retry, and count what follows.
        row = enqueue(queue_name="low_priority")
        for _ in range(3):
            finish_failed(backend.store, claim_due(backend.store, "w1"))
        assert TaskRecord.objects.get(pk=row.pk).status == FAILED
        backend.store.retry([row.pk])
        statuses = []
        for _ in range(3):
            finish_failed(backend.store, claim_due(backend.store, "w2"))
            statuses.append(TaskRecord.objects.get(pk=row.pk).status)
        assert statuses == [READY, READY, FAILED]
        assert Attempt.objects.filter(task_id=row.pk).count() == 6

    @pytest.mark.parametrize("status", [READY, RUNNING, SUCCESSFUL])
    def test_refuses_tasks_that_did_not_fail(
        self, backend: DatabaseBackend, status: TaskResultStatus
    ) -> None:
        row = enqueue(status=status, attempt_count=1, available_after=later(hours=1))
        applied = backend.store.retry([row.pk])
        assert (applied.changed, applied.refused) == ((), (row.pk,))
        stored = TaskRecord.objects.get(pk=row.pk)
        assert (stored.status, stored.attempt_count) == (status, 1)
        assert stored.available_after == row.available_after

    def test_refuses_ids_that_do_not_exist_or_belong_to_another_backend(
        self, backend: DatabaseBackend
    ) -> None:
        other = enqueue(status=FAILED, backend_name="elsewhere")
        applied = backend.store.retry([other.pk, 10**12])
        assert applied.changed == ()
        assert set(applied.refused) == {other.pk, 10**12}
        assert TaskRecord.objects.get(pk=other.pk).status == FAILED


@pytest.mark.django_db
class TestRunNow:
    def test_a_deferred_task_becomes_due_and_is_claimed(self, backend: DatabaseBackend) -> None:
        deferred = enqueue(available_after=later(hours=2))
        assert claim_all(backend.store) == []
        applied = backend.store.run_now([deferred.pk])
        assert applied.changed == (deferred.pk,)
        stored = TaskRecord.objects.get(pk=deferred.pk)
        assert stored.status == READY
        assert stored.available_after <= backend.store.database_now()
        assert [r.pk for r in claim_all(backend.store)] == [deferred.pk]

    def test_refuses_due_running_and_finished_tasks(self, backend: DatabaseBackend) -> None:
        due = enqueue(available_after=ago(minutes=1))
        running = enqueue(status=RUNNING, available_after=later(hours=1))
        finished = enqueue(status=SUCCESSFUL, available_after=later(hours=1))
        applied = backend.store.run_now([due.pk, running.pk, finished.pk])
        assert applied.changed == ()
        assert set(applied.refused) == {due.pk, running.pk, finished.pk}
        for row in (due, running, finished):
            stored = TaskRecord.objects.get(pk=row.pk)
            assert (stored.status, stored.available_after) == (row.status, row.available_after)


@pytest.mark.django_db
class TestCancel:
    def test_a_ready_task_ends_failed_with_task_cancelled(self, backend: DatabaseBackend) -> None:
        row = enqueue(available_after=later(hours=1))
        applied = backend.store.cancel([row.pk], cancelled_by="admin:alice")
        assert applied.changed == (row.pk,)
        stored = TaskRecord.objects.get(pk=row.pk)
        assert stored.status == FAILED
        assert stored.finished_at is not None
        (attempt,) = Attempt.objects.filter(task_id=row.pk).select_related("error")
        assert attempt.status == FAILED
        assert attempt.worker_id == "cancelled by admin:alice"
        assert attempt.started_at == attempt.stopped_at == stored.finished_at
        result = backend.get_result(str(row.pk))
        assert result.status == FAILED
        (error,) = result.errors
        assert error.exception_class_path == CANCELLED_PATH
        assert "cancelled by admin:alice" in error.traceback
        assert TaskCancelled.__doc__ in error.traceback  # type: ignore[operator]
        assert claim_all(backend.store) == []

    @pytest.mark.parametrize("status", [RUNNING, SUCCESSFUL, FAILED])
    def test_refuses_tasks_that_are_not_ready(
        self, backend: DatabaseBackend, status: TaskResultStatus
    ) -> None:
        row = enqueue(status=status)
        applied = backend.store.cancel([row.pk], cancelled_by="admin:alice")
        assert (applied.changed, applied.refused) == ((), (row.pk,))
        assert TaskRecord.objects.get(pk=row.pk).status == status
        assert not Attempt.objects.filter(task_id=row.pk).exists()

    def test_a_mixed_selection_changes_the_ready_ones_only(self, backend: DatabaseBackend) -> None:
        ready = [enqueue() for _ in range(3)]
        running = claim_all(backend.store, "w1", limit=1)
        assert [r.pk for r in running] == [ready[0].pk]
        applied = backend.store.cancel([r.pk for r in ready], cancelled_by="ops")
        assert applied.changed == (ready[1].pk, ready[2].pk)
        assert applied.refused == (ready[0].pk,)
        # The running task's worker still holds it and may record its outcome.
        written = backend.store.finish(worker_id="w1", outcomes=[Outcome(running[0], SUCCESSFUL)])
        assert [w.status for w in written] == [SUCCESSFUL]

    def test_a_cancelled_task_can_be_retried(self, backend: DatabaseBackend) -> None:
        row = enqueue()
        backend.store.cancel([row.pk], cancelled_by="ops")
        assert backend.store.retry([row.pk]).changed == (row.pk,)
        assert [r.pk for r in claim_all(backend.store)] == [row.pk]


def task_runs() -> Any:
    """Executions written by the tasks themselves (the test app also records signals)."""
    return Execution.objects.exclude(label__startswith="signal:")


@pytest.mark.django_db(transaction=True)
def test_cancel_racing_claims_never_both_win(backend: DatabaseBackend) -> None:
    store = backend.store
    for _ in range(5):
        ids = [enqueue(record).pk for _ in range(40)]

        def act(index: int, ids: list[int] = ids) -> list[int]:
            if index == 0:
                return list(store.cancel(reversed(ids), cancelled_by="racer").changed)
            claimed: list[int] = []
            while batch := claim_all(store, f"w{index}", limit=3):
                claimed += [r.pk for r in batch]
            return claimed

        cancelled, *claims = race(3, act)
        claimed = [pk for batch in claims for pk in batch]
        assert len(claimed) == len(set(claimed))
        assert not set(cancelled) & set(claimed)
        assert set(cancelled) | set(claimed) == set(ids)
        statuses = dict(TaskRecord.objects.filter(pk__in=ids).values_list("pk", "status"))
        assert {statuses[pk] for pk in cancelled} <= {FAILED}
        assert {statuses[pk] for pk in claimed} <= {RUNNING}
        assert Attempt.objects.filter(task_id__in=claimed).count() == 0
        TaskRecord.objects.all().delete()


@pytest.mark.process
def test_a_worker_never_runs_a_task_cancelled_while_it_works(
    backend: DatabaseBackend, start_worker: Any
) -> None:
    results = [record.enqueue(label=str(i), sleep=0.02) for i in range(80)]
    ids = [int(r.id) for r in results]
    worker = start_worker("--concurrency", "2")
    wait_until(task_runs().exists, what="the worker to start running tasks")
    cancelled = set(backend.store.cancel(reversed(ids), cancelled_by="racer").changed)
    unfinished = TaskRecord.objects.filter(pk__in=ids, status__in=[READY, RUNNING])
    wait_until(lambda: not unfinished.exists(), timeout=60, what="every task to end")
    ran = set(task_runs().values_list("result_id", flat=True))
    assert cancelled, "the worker ran every task before the cancel; nothing raced"
    for result in results:
        result.refresh()
        said = f"task {result.id}: {result.status} {result.errors}\n{worker.log()}"
        if int(result.id) in cancelled:
            assert result.status == FAILED, said
            assert [e.exception_class_path for e in result.errors] == [CANCELLED_PATH], said
            assert result.id not in ran, said
        else:
            assert result.status == SUCCESSFUL, said
            assert result.id in ran, said


@pytest.mark.process
def test_retry_continues_the_attempt_count_and_renews_the_budget(
    backend: DatabaseBackend, start_worker: Any
) -> None:
    # low_priority allows 3 attempts; the task succeeds on its 5th.
    result = fail_until.using(queue_name="low_priority").enqueue(succeed_on=5)
    worker = start_worker("--oneshot")
    assert worker.wait() == 0, worker.log()
    result.refresh()
    assert result.status == FAILED
    assert len(result.errors) == 3
    applied = backend.store.retry([int(result.id)])
    assert applied.changed == (int(result.id),)
    worker = start_worker("--oneshot")
    assert worker.wait() == 0, worker.log()
    result.refresh()
    assert result.status == SUCCESSFUL
    assert result.return_value == 5
    assert len(result.worker_ids) == 5
    assert len(result.errors) == 4
    runs = list(task_runs().filter(result_id=result.id).values_list("attempt", flat=True))
    assert runs == [1, 2, 3, 4, 5]
