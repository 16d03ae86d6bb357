"""Flow control on every database: unique tasks and concurrency slots (conveyor.flow)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import F

from conveyor import DuplicateResult, enqueue_many
from conveyor.backend import DatabaseBackend
from conveyor.columns import HOLD_NONE, HOLD_SLOT
from conveyor.compat import TaskResultStatus, task_enqueued
from conveyor.models import RateWindow, TaskRecord
from conveyor.store import Outcome
from conveyor.store.flow import FlowControl
from tests.conftest import wait_until
from tests.factories import ALL_QUEUES, claim_all
from tests.operations.helpers import race
from tests.tasksapp.tasks import call_partner, once_ever, rate_limited, sync_account

pytestmark = pytest.mark.django_db

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def finish(backend: DatabaseBackend, records: list[TaskRecord], status: str = SUCCESSFUL) -> None:
    for record in records:
        backend.store.finish(
            worker_id=record.worker_id, outcomes=[Outcome(record, TaskResultStatus(status))]
        )


def test_a_duplicate_of_a_live_unique_task_stores_nothing_and_returns_the_live_one() -> None:
    sent: list[str] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        sent.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        first = sync_account.enqueue(7)
        again = sync_account.enqueue(7)
        other = sync_account.enqueue(8)
    finally:
        task_enqueued.disconnect(receiver)
    assert not isinstance(first, DuplicateResult)
    assert isinstance(again, DuplicateResult)
    assert again.id == first.id
    assert again.status == READY
    assert other.id != first.id
    assert TaskRecord.objects.count() == 2
    assert sent == [first.id, other.id]  # not for the duplicate


def test_the_key_is_freed_when_the_task_ends_unless_its_states_keep_it(
    backend: DatabaseBackend,
) -> None:
    first = sync_account.enqueue(7)
    kept = once_ever.enqueue(7)
    claimed = claim_all(backend.store, "w")
    assert isinstance(sync_account.enqueue(7), DuplicateResult)  # RUNNING holds it too
    finish(backend, claimed)
    again = sync_account.enqueue(7)
    assert not isinstance(again, DuplicateResult)
    assert again.id != first.id
    assert isinstance(once_ever.enqueue(7), DuplicateResult)  # kept when SUCCESSFUL
    assert once_ever.enqueue(7).id == kept.id


def test_a_cancelled_unique_task_frees_its_key(backend: DatabaseBackend) -> None:
    first = sync_account.enqueue(7)
    backend.store.cancel([int(first.id)], cancelled_by="ops")
    assert not isinstance(sync_account.enqueue(7), DuplicateResult)


def test_enqueue_many_stores_one_row_per_key_and_says_which_were_duplicates() -> None:
    results: list[Any] = enqueue_many(sync_account, [((1,), {}), ((2,), {}), ((1,), {})])
    assert [isinstance(r, DuplicateResult) for r in results] == [False, False, True]
    assert results[2].id == results[0].id
    assert TaskRecord.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueues_of_one_unique_task_store_exactly_one_row() -> None:
    ids = race(8, lambda i: sync_account.enqueue(42).id)
    assert len(set(ids)) == 1
    assert TaskRecord.objects.count() == 1


def test_tasks_over_the_limit_wait_outside_the_claim_and_are_promoted_as_slots_free(
    backend: DatabaseBackend,
) -> None:
    results = [call_partner.enqueue(1, label=str(n)) for n in range(5)]
    other_account = call_partner.enqueue(2)
    holds = [TaskRecord.objects.get(pk=r.id).hold for r in results]
    assert holds == [HOLD_NONE, HOLD_NONE, HOLD_SLOT, HOLD_SLOT, HOLD_SLOT]
    claimed = claim_all(backend.store, "w")
    assert sorted(str(r.pk) for r in claimed) == sorted(
        [results[0].id, results[1].id, other_account.id]
    )
    (state,) = [s for s in backend.store.slots() if s.key.endswith(":1")]
    assert (state.limit, state.holding, state.running, state.waiting) == (2, 2, 2, 3)
    assert sorted(state.holders) == sorted(int(r.id) for r in results[:2])
    assert backend.store.waiting_keys() == [state.key]
    finish(backend, [r for r in claimed if str(r.pk) == results[0].id], FAILED)
    (promoted,) = claim_all(backend.store, "w")  # the finish gave its slot to the next
    assert str(promoted.pk) == results[2].id


def test_finish_and_claim_frees_slots_and_keeps_rate_limits(backend: DatabaseBackend) -> None:
    holders = [call_partner.enqueue(1) for _ in range(2)]
    waiting = call_partner.enqueue(1)
    limited = [rate_limited.enqueue() for _ in range(5)]
    first, _ = (r for r in claim_all(backend.store, "w") if str(r.pk) in {h.id for h in holders})
    written, claimed = backend.store.finish_and_claim(
        worker_id="w", outcomes=[Outcome(first, SUCCESSFUL)], queues=ALL_QUEUES, limit=10
    )
    assert [w.status for w in written] == [SUCCESSFUL]
    assert claimed == []  # the first claim took the three the rate allows; the rest wait
    assert TaskRecord.objects.get(pk=waiting.id).hold == HOLD_NONE  # promoted after the finish
    waiting_for_rate = TaskRecord.objects.filter(pk__in=[int(r.id) for r in limited], status=READY)
    assert waiting_for_rate.count() == 2


def test_deleting_or_cancelling_a_holder_frees_its_slot(backend: DatabaseBackend) -> None:
    results = [call_partner.enqueue(1) for _ in range(4)]
    backend.store.delete([int(results[0].id)])
    backend.store.cancel([int(results[1].id)], cancelled_by="ops")
    holds = [TaskRecord.objects.get(pk=r.id).hold for r in results[2:]]
    assert holds == [HOLD_NONE, HOLD_NONE]


def test_a_lost_worker_s_slot_comes_back_through_recovery(backend: DatabaseBackend) -> None:
    results = [call_partner.enqueue(1) for _ in range(3)]
    claim_all(backend.store, "dead")  # two hold slots; never registered: lost
    backend.store.recover_lost(recovered_by="rescuer")
    assert TaskRecord.objects.get(pk=results[2].id).hold == HOLD_NONE


def test_promote_never_passes_the_limit(backend: DatabaseBackend) -> None:
    results = [call_partner.enqueue(1) for _ in range(4)]
    TaskRecord.objects.filter(pk=results[0].id).update(hold=HOLD_SLOT)  # as if it had waited
    assert backend.store.promote(["tests.tasksapp.tasks.call_partner:1"]) == 1
    assert backend.store.promote(["tests.tasksapp.tasks.call_partner:1"]) == 0
    holding = TaskRecord.objects.filter(status=READY, hold=HOLD_NONE).count()
    assert holding == 2


def test_a_queue_limit_applies_to_its_tasks_without_their_own(task_options: Any) -> None:
    backend = task_options(queues={"other": {"concurrency": 1}})
    from tests.tasksapp.tasks import add

    first, second = (add.using(queue_name="other").enqueue(1, n) for n in range(2))
    assert TaskRecord.objects.get(pk=first.id).hold == HOLD_NONE
    assert TaskRecord.objects.get(pk=second.id).hold == HOLD_SLOT
    assert [s.key for s in backend.store.slots()] == ["queue:other"]


def test_claims_over_the_rate_limit_wait_for_the_next_window(backend: DatabaseBackend) -> None:
    results = [rate_limited.enqueue() for _ in range(5)]
    claimed = claim_all(backend.store, "w")
    assert len(claimed) == 3  # 3 per second
    deferred = TaskRecord.objects.filter(status=READY)
    assert deferred.count() == 2
    for row in deferred:
        assert (row.hold, row.attempt_count, row.worker_id, row.started_at) == (1, 0, "", None)
        started = claimed[0].last_attempted_at
        assert started is not None
        assert row.available_after > started
    (state,) = backend.store.rate_states()
    assert (state.key, state.limit, state.starts, state.waiting) == (
        "tests.tasksapp.tasks.rate_limited",
        3,
        3,
        2,
    )
    assert state.next_window == state.window_start + state.period
    assert state.period.total_seconds() == 1
    # The deferred ones are claimed once their window opens, and no sooner. A slow machine
    # may reach the next claim after the window opened: what the claim time says is checked.
    due = claim_all(backend.store, "w")
    if len(due) < 2:
        due += wait_until(lambda: claim_all(backend.store, "w"), timeout=5, what="the next window")
    assert len(due) == 2
    for record in due:
        assert record.last_attempted_at is not None
        assert record.last_attempted_at >= state.next_window
    assert {str(r.pk) for r in claimed} | {str(r.pk) for r in due} == {r.id for r in results}


def test_a_late_claim_does_not_count_its_starts_in_a_window_already_passed(
    backend: DatabaseBackend,
) -> None:
    """A worker whose claim fell in one window but whose starts are counted after another
    worker has opened the next window (which prunes the older one) must not find that older
    window empty and start more tasks in it: the late tasks wait for the current window."""
    rate_limited.enqueue()
    (current,) = claim_all(backend.store, "w")
    late_task = rate_limited.enqueue()
    TaskRecord.objects.filter(pk=late_task.id).update(
        status=RUNNING, worker_id="late", attempt_count=1
    )
    late = TaskRecord.objects.get(pk=late_task.id)
    assert current.last_attempted_at is not None
    late.last_attempted_at = current.last_attempted_at - timedelta(seconds=1)  # the window before
    store = backend.store
    assert isinstance(store, FlowControl)
    assert store._take_starts("late", [late]) == {late.pk}
    row = TaskRecord.objects.get(pk=late.pk)
    assert (row.status, row.hold, row.worker_id, row.attempt_count) == (READY, 1, "", 0)
    (state,) = backend.store.rate_states()
    assert state.starts == 1  # only the current window's one start


def test_a_claim_whose_window_is_pruned_under_it_waits_for_the_current_window(
    backend: DatabaseBackend,
) -> None:
    """A worker in the next window may prune this claim's window between the claim's insert
    of it (a no-op: the row existed) and its locked read; under READ COMMITTED the read then
    finds no row. That is a late claim too: its tasks wait, and the worker goes on."""
    rate_limited.enqueue()
    (current,) = claim_all(backend.store, "w")
    assert current.last_attempted_at is not None
    late_task = rate_limited.enqueue()
    TaskRecord.objects.filter(pk=late_task.id).update(
        status=RUNNING, worker_id="late", attempt_count=1
    )
    late = TaskRecord.objects.get(pk=late_task.id)
    late.last_attempted_at = current.last_attempted_at
    store = backend.store
    assert isinstance(store, FlowControl)

    def prune_before_the_count(execute: Any, sql: str, *args: Any) -> Any:
        if sql.startswith("SELECT") and "conveyor_rate_window" in sql and "window_start =" in sql:
            # What the other worker's committed prune leaves: its window, and not this one.
            RateWindow.objects.update(window_start=F("window_start") + timedelta(seconds=1))
        return execute(sql, *args)

    with connection.execute_wrapper(prune_before_the_count):
        assert store._take_starts("late", [late]) == {late.pk}
    row = TaskRecord.objects.get(pk=late.pk)
    assert (row.status, row.hold, row.worker_id, row.attempt_count) == (READY, 1, "", 0)
    (state,) = backend.store.rate_states()
    assert state.starts == 1  # the other window's one start; the late task took none


def test_insert_controlled_answers_the_live_task_of_a_duplicate_key(
    backend: DatabaseBackend,
) -> None:
    first = backend.new_task(sync_account, (5,), {})
    second = backend.new_task(sync_account, (5,), {})
    assert backend.store.insert_controlled([first, second]) == [None, first.pk]
    assert second.pk is None
    assert TaskRecord.objects.get().unique_key == first.unique_key


def test_a_unique_periodic_task_is_not_enqueued_while_its_previous_run_is_live(
    backend: DatabaseBackend,
) -> None:
    from datetime import timedelta

    now = backend.store.database_now().replace(microsecond=0)
    window = timedelta(hours=1)
    task = backend.new_task(sync_account, (9,), {})
    first = backend.store.enqueue_tick(task, schedule_name="sync", tick=now, window=window)
    assert first is not None
    later = backend.new_task(sync_account, (9,), {})
    tick = now + timedelta(seconds=1)
    assert backend.store.enqueue_tick(later, schedule_name="sync", tick=tick, window=window) is None
    assert TaskRecord.objects.count() == 1
    assert (
        backend.store.run_schedule(backend.new_task(sync_account, (9,), {}), schedule_name="sync")
        == first
    )
