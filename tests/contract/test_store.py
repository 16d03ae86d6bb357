"""The task store on every database: claim order, fencing, outcomes, retries, purge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db.models.functions import Now
from django.db.models.signals import post_init

from conveyor.backend import DatabaseBackend
from conveyor.columns import HOLD_NONE, HOLD_TIME
from conveyor.compat import TaskError, TaskResultStatus
from conveyor.models import Attempt, TaskRecord
from conveyor.store import Outcome, QueueFilter
from tests.conftest import wait_until
from tests.factories import ALL_QUEUES, ago, claim_all, enqueue, later
from tests.tasksapp.tasks import add, fail, low

pytestmark = pytest.mark.django_db

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def boom() -> TaskError:
    return TaskError(exception_class_path="builtins.ValueError", traceback="ValueError: boom\n")


def write(backend: DatabaseBackend, outcomes: list[Outcome], *, with_claim: bool) -> None:
    """Record outcomes of worker "w" by finish(), or with a claim (of a task enqueued for it)."""
    if not with_claim:
        backend.store.finish(worker_id="w", outcomes=outcomes)
        return
    enqueue()
    written, claimed = backend.store.finish_and_claim(
        worker_id="w", outcomes=outcomes, queues=ALL_QUEUES, limit=1
    )
    assert (len(written), len(claimed)) == (len(outcomes), 1)


def test_claim_marks_rows_running_for_the_worker(backend: DatabaseBackend) -> None:
    row = enqueue()
    (claimed,) = claim_all(backend.store, "worker-a")
    assert claimed.pk == row.pk
    assert (claimed.status, claimed.worker_id, claimed.attempt_count) == (RUNNING, "worker-a", 1)
    assert claimed.started_at is not None
    assert claimed.last_attempted_at == claimed.started_at
    stored = TaskRecord.objects.get(pk=row.pk)
    assert (stored.status, stored.worker_id, stored.attempt_count) == (RUNNING, "worker-a", 1)
    assert stored.last_attempted_at == claimed.last_attempted_at
    assert claim_all(backend.store, "worker-b") == []


def test_claim_order_is_priority_then_due_time_then_attempts_then_age(
    backend: DatabaseBackend,
) -> None:
    base = ago(minutes=10)
    rows = {
        "late_high": enqueue(available_after=ago(minutes=1), priority=100),
        "early_low": enqueue(available_after=base, priority=-5),
        "early_mid_retried": enqueue(available_after=base, priority=5, attempt_count=2),
        "early_mid_new_old": enqueue(available_after=base, priority=5, enqueued_at=ago(minutes=30)),
        "early_mid_new_young": enqueue(
            available_after=base, priority=5, enqueued_at=ago(minutes=20)
        ),
        "later_mid": enqueue(available_after=ago(minutes=5), priority=5),
        "deferred_highest": enqueue(available_after=later(minutes=5), priority=100),
    }
    claimed = [r.pk for r in claim_all(backend.store)]
    expected = [
        "late_high",
        "early_mid_new_old",
        "early_mid_new_young",
        "early_mid_retried",
        "later_mid",
        "early_low",
    ]
    assert claimed == [rows[name].pk for name in expected]


def test_a_higher_priority_runs_sooner_whatever_was_enqueued_first(
    backend: DatabaseBackend,
) -> None:
    low, mid, high = (add.using(priority=p).enqueue(1, 1) for p in (-10, 0, 10))
    claimed = [str(backend.store.claim(worker_id="w", queues=QueueFilter(), limit=1)[0].pk)]
    claimed += [str(r.pk) for r in claim_all(backend.store)]
    assert claimed == [high.id, mid.id, low.id]


def test_a_deferred_task_is_claimed_once_due_in_priority_order(backend: DatabaseBackend) -> None:
    deferred = add.using(priority=50, run_after=later(seconds=0.3)).enqueue(1, 1)
    plain = add.enqueue(2, 2)
    assert TaskRecord.objects.get(pk=deferred.id).hold == HOLD_TIME
    assert [str(r.pk) for r in claim_all(backend.store)] == [plain.id]
    due = wait_until(lambda: claim_all(backend.store), timeout=10, what="the deferred task")
    assert [str(r.pk) for r in due] == [deferred.id]
    assert TaskRecord.objects.get(pk=deferred.id).hold == HOLD_NONE


def test_claim_takes_at_most_limit_most_urgent(backend: DatabaseBackend) -> None:
    rows = [enqueue(available_after=ago(minutes=10 - i)) for i in range(5)]
    first = backend.store.claim(worker_id="w", queues=QueueFilter(), limit=2)
    assert [r.pk for r in first] == [rows[0].pk, rows[1].pk]
    assert backend.store.claim(worker_id="w", queues=QueueFilter(), limit=0) == []


def test_run_after_in_the_future_is_not_claimed(backend: DatabaseBackend) -> None:
    add.using(run_after=later(hours=1)).enqueue(1, 1)
    assert claim_all(backend.store) == []
    next_at = backend.store.next_available_at(QueueFilter())
    assert next_at is not None
    assert next_at > later(minutes=59)


def test_queue_filters(backend: DatabaseBackend) -> None:
    default, other = add.enqueue(1, 1), low.enqueue(2)
    only_low = backend.store.claim(
        worker_id="w", queues=QueueFilter(include=frozenset({"low_priority"})), limit=10
    )
    assert [str(r.pk) for r in only_low] == [other.id]
    excluded = backend.store.claim(
        worker_id="w", queues=QueueFilter(exclude=frozenset({"default"})), limit=10
    )
    assert excluded == []
    assert [str(r.pk) for r in claim_all(backend.store)] == [default.id]


@pytest.mark.parametrize("heard", [False, True], ids=["no init receivers", "post_init heard"])
def test_claimed_records_are_what_the_orm_builds(backend: DatabaseBackend, heard: bool) -> None:
    enqueue()
    seen: list[int] = []

    def receiver(sender: Any, instance: TaskRecord, **kwargs: Any) -> None:
        seen.append(instance.pk)

    if heard:
        post_init.connect(receiver, sender=TaskRecord)
    try:
        (record,) = claim_all(backend.store, "w")
    finally:
        post_init.disconnect(receiver, sender=TaskRecord)
    stored = TaskRecord.objects.get(pk=record.pk)
    assert seen == ([record.pk] if heard else [])
    fields = [field.attname for field in TaskRecord._meta.concrete_fields]
    assert [getattr(record, name) for name in fields] == [getattr(stored, name) for name in fields]
    assert (record._state.adding, record._state.db) == (False, stored._state.db)


def test_claim_ignores_other_backends(backend: DatabaseBackend) -> None:
    enqueue(backend_name="elsewhere")
    assert claim_all(backend.store) == []


def test_success_is_recorded_once_with_its_attempt(backend: DatabaseBackend) -> None:
    enqueue()
    (record,) = claim_all(backend.store, "w")
    written = backend.store.finish(
        worker_id="w", outcomes=[Outcome(record, SUCCESSFUL, return_value={"n": [1, 2]})]
    )
    assert [w.status for w in written] == [SUCCESSFUL]
    result = backend.get_result(str(record.pk))
    assert result.status == SUCCESSFUL
    assert result.return_value == {"n": [1, 2]}
    assert result.worker_ids == ["w"]
    assert result.finished_at is not None
    assert result.started_at is not None
    assert result.finished_at >= result.started_at
    attempt = Attempt.objects.get(task_id=record.pk)
    assert (attempt.status, attempt.worker_id) == (SUCCESSFUL, "w")
    assert attempt.started_at == record.last_attempted_at
    assert TaskRecord.objects.get(pk=record.pk).worker_id == ""


@pytest.mark.parametrize("with_claim", [False, True], ids=["finish", "finish_and_claim"])
@pytest.mark.parametrize(
    "value",
    [None, 0, -1.5, "", 'ünïcode "quoted" \\ back\nslash', [None, 1], {"a": None}, {}],
    ids=repr,
)
def test_a_return_value_of_any_json_shape_is_kept_as_it_was(
    backend: DatabaseBackend, value: Any, with_claim: bool
) -> None:
    enqueue()
    (record,) = claim_all(backend.store, "w")
    write(backend, [Outcome(record, SUCCESSFUL, return_value=value)], with_claim=with_claim)
    assert backend.get_result(str(record.pk)).return_value == value
    # A task that returned None leaves the column empty, as a task never finished does.
    stored = TaskRecord.objects.filter(pk=record.pk, return_value__isnull=True).exists()
    assert stored == (value is None)


@pytest.mark.parametrize("with_claim", [False, True], ids=["finish", "finish_and_claim"])
def test_an_error_s_class_and_traceback_are_kept_character_for_character(
    backend: DatabaseBackend, with_claim: bool
) -> None:
    fail.enqueue()
    (record,) = claim_all(backend.store, "w")
    text = 'Traceback (most recent call last):\n  File "x.py"\nValueError: \'ünï\' \\ "q" %s\n'
    error = TaskError(exception_class_path="builtins.ValueError", traceback=text)
    write(backend, [Outcome(record, FAILED, error=error)], with_claim=with_claim)
    (kept,) = backend.get_result(str(record.pk)).errors
    assert (kept.exception_class_path, kept.traceback) == ("builtins.ValueError", text)


def test_finish_is_fenced_to_the_holding_worker_and_attempt(backend: DatabaseBackend) -> None:
    enqueue()
    (record,) = claim_all(backend.store, "w")
    assert backend.store.finish(worker_id="intruder", outcomes=[Outcome(record, SUCCESSFUL)]) == []
    # Recovery hands the task to a new attempt; the old attempt's outcome must not land.
    TaskRecord.objects.filter(pk=record.pk).update(attempt_count=2)
    assert backend.store.finish(worker_id="w", outcomes=[Outcome(record, SUCCESSFUL)]) == []
    row = TaskRecord.objects.get(pk=record.pk)
    assert (row.status, row.worker_id) == (RUNNING, "w")
    assert not Attempt.objects.exists()


def test_a_batch_writes_what_it_holds_and_skips_the_rest(backend: DatabaseBackend) -> None:
    for _ in range(3):
        enqueue()
    first, second, third = claim_all(backend.store, "w")
    TaskRecord.objects.filter(pk=second.pk).update(status=READY, worker_id="")
    written = backend.store.finish(
        worker_id="w",
        outcomes=[
            Outcome(first, SUCCESSFUL, return_value=1),
            Outcome(second, SUCCESSFUL, return_value=2),
            Outcome(third, FAILED, error=boom()),
        ],
    )
    assert [(w.outcome.record.pk, w.status) for w in written] == [
        (first.pk, SUCCESSFUL),
        (third.pk, FAILED),
    ]
    assert TaskRecord.objects.get(pk=second.pk).status == READY
    assert Attempt.objects.count() == 2


def test_finish_and_claim_writes_the_batch_then_claims_the_most_urgent(
    backend: DatabaseBackend,
) -> None:
    for _ in range(3):
        enqueue()
    first, second, third = claim_all(backend.store, "w")
    TaskRecord.objects.filter(pk=second.pk).update(status=READY, worker_id="")  # taken back
    urgent = enqueue(priority=50)
    written, claimed = backend.store.finish_and_claim(
        worker_id="w",
        outcomes=[
            Outcome(first, SUCCESSFUL, return_value=1),
            Outcome(second, SUCCESSFUL, return_value=2),
            Outcome(third, FAILED, error=boom()),
        ],
        queues=ALL_QUEUES,
        limit=1,
    )
    assert [(w.outcome.record.pk, w.status) for w in written] == [
        (first.pk, SUCCESSFUL),
        (third.pk, FAILED),
    ]
    assert [(r.pk, r.status, r.worker_id) for r in claimed] == [(urgent.pk, RUNNING, "w")]
    assert backend.get_result(str(first.pk)).return_value == 1
    assert TaskRecord.objects.get(pk=second.pk).status == READY  # fenced off, still waiting
    assert TaskRecord.objects.get(pk=urgent.pk).status == RUNNING
    assert Attempt.objects.count() == 2


def test_finish_and_claim_with_nothing_to_finish_or_no_slot_does_the_other_half(
    backend: DatabaseBackend,
) -> None:
    enqueue()
    enqueue()
    written, claimed = backend.store.finish_and_claim(
        worker_id="w", outcomes=[], queues=ALL_QUEUES, limit=1
    )
    assert (written, len(claimed)) == ([], 1)
    written, more = backend.store.finish_and_claim(
        worker_id="w", outcomes=[Outcome(claimed[0], SUCCESSFUL)], queues=ALL_QUEUES, limit=0
    )
    assert ([w.status for w in written], more) == ([SUCCESSFUL], [])
    assert TaskRecord.objects.filter(status=READY).count() == 1


def test_failure_without_retries_is_final_with_its_error(backend: DatabaseBackend) -> None:
    fail.enqueue()
    (record,) = claim_all(backend.store, "w")
    backend.store.finish(worker_id="w", outcomes=[Outcome(record, FAILED, error=boom())])
    result = backend.get_result(str(record.pk))
    assert result.status == FAILED
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"]
    assert result.errors[0].exception_class is ValueError
    assert result.errors[0].traceback == "ValueError: boom\n"
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_failures_retry_with_backoff_until_max_attempts(task_options: Any) -> None:
    backend = task_options(max_attempts=3, backoff_factor=60)
    fail.enqueue()
    (record,) = claim_all(backend.store, "w")
    (written,) = backend.store.finish(
        worker_id="w", outcomes=[Outcome(record, FAILED, error=boom())]
    )
    assert written.status == READY
    row = TaskRecord.objects.get(pk=record.pk)
    assert (row.status, row.worker_id, row.attempt_count, row.finished_at) == (READY, "", 1, None)
    # Retry 1 waits backoff_factor ** 1 seconds, on the database clock.
    assert row.available_after - written.outcome.record.last_attempted_at >= timedelta(seconds=59)
    assert claim_all(backend.store) == []

    for expected_status, expected_delay in ((READY, 3600), (FAILED, None)):
        TaskRecord.objects.filter(pk=record.pk).update(available_after=Now())
        (record,) = claim_all(backend.store, "w")
        (written,) = backend.store.finish(
            worker_id="w", outcomes=[Outcome(record, FAILED, error=boom())]
        )
        assert written.status == expected_status
        if expected_delay:
            assert written.available_after is not None
            assert written.available_after - record.last_attempted_at >= timedelta(
                seconds=expected_delay - 1
            )
    result = backend.get_result(str(record.pk))
    assert result.status == FAILED
    assert len(result.errors) == 3
    assert result.attempts == 3


def test_per_queue_overrides_apply(task_options: Any) -> None:
    backend = task_options(max_attempts=1, queues={"low_priority": {"max_attempts": 2}})
    add.enqueue(1, 1)
    low.enqueue(1)
    records = claim_all(backend.store, "w")
    written = backend.store.finish(
        worker_id="w", outcomes=[Outcome(r, FAILED, error=boom()) for r in records]
    )
    statuses = {w.outcome.record.queue_name: w.status for w in written}
    assert statuses == {"default": FAILED, "low_priority": READY}


def test_release_unheld_hands_back_rows_whose_claim_reply_was_lost(
    backend: DatabaseBackend,
) -> None:
    for _ in range(3):
        enqueue()
    kept, *lost = claim_all(backend.store, "w")
    assert backend.store.release_unheld(worker_id="w", held=[kept.pk]) == 2
    rows = {r.pk: r for r in TaskRecord.objects.all()}
    assert rows[kept.pk].status == RUNNING
    for record in lost:
        assert (rows[record.pk].status, rows[record.pk].attempt_count) == (READY, 0)


def test_purge_deletes_old_finished_results_with_their_attempts(backend: DatabaseBackend) -> None:
    old = [enqueue() for _ in range(3)]
    for record in claim_all(backend.store, "w"):
        backend.store.finish(worker_id="w", outcomes=[Outcome(record, SUCCESSFUL)])
    TaskRecord.objects.filter(pk__in=[r.pk for r in old]).update(finished_at=ago(days=11))
    recent_finished = enqueue(status=SUCCESSFUL, finished_at=ago(days=1))
    ready = enqueue(enqueued_at=ago(days=30))
    deleted = backend.store.purge(finished=True, older_than=timedelta(days=10), batch_size=2)
    assert deleted == 3
    assert set(TaskRecord.objects.values_list("pk", flat=True)) == {recent_finished.pk, ready.pk}
    assert not Attempt.objects.exists()


def test_purge_unfinished_deletes_only_old_ready_tasks(backend: DatabaseBackend) -> None:
    stale = enqueue(enqueued_at=ago(days=30), available_after=ago(days=30))
    fresh = enqueue(enqueued_at=ago(days=1))
    running = enqueue(enqueued_at=ago(days=30), status=RUNNING, worker_id="w")
    # Enqueued long ago but deferred until recently, or into the future: not stale.
    deferred = enqueue(enqueued_at=ago(days=30), available_after=later(days=9))
    recently_due = enqueue(enqueued_at=ago(days=30), available_after=ago(days=2))
    assert backend.store.purge(finished=False, older_than=timedelta(days=20)) == 1
    remaining = set(TaskRecord.objects.values_list("pk", flat=True))
    assert remaining == {fresh.pk, running.pk, deferred.pk, recently_due.pk}
    assert stale.pk not in remaining


def test_purge_respects_the_limit(backend: DatabaseBackend) -> None:
    for _ in range(5):
        enqueue(status=FAILED, finished_at=ago(days=40))
    assert (
        backend.store.purge(finished=True, older_than=timedelta(days=10), limit=3, batch_size=2)
        == 3
    )
    assert TaskRecord.objects.count() == 2
