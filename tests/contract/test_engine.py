"""One contract test per engine operation not covered by a suite of its own (claim and
finish: test_store.py; recovery: test_recovery.py; operator actions: operations/)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import Attempt, Lease, TaskRecord
from conveyor.store import NewTask, QueueFilter
from tests.factories import ago, claim_all, enqueue, later
from tests.operations.helpers import claim_due, fail_once, finish_failed, succeed_once
from tests.tasksapp.tasks import add, low

pytestmark = pytest.mark.django_db

READY, RUNNING, FAILED = TaskResultStatus.READY, TaskResultStatus.RUNNING, TaskResultStatus.FAILED


def new_task(backend: DatabaseBackend, run_after: object = None, queue: str = "default") -> NewTask:
    return NewTask(
        task_path="tests.tasksapp.tasks.add",
        backend_name=backend.alias,
        queue_name=queue,
        priority=3,
        takes_context=False,
        arguments={"args": [1, 2], "kwargs": {}},
        arguments_json='{"args": [1, 2], "kwargs": {}}',
        run_after=run_after,  # type: ignore[arg-type]
    )


def test_insert_stores_ready_rows_and_fills_in_ids_and_times(backend: DatabaseBackend) -> None:
    deferred_until = later(hours=1)
    tasks = [new_task(backend), new_task(backend, run_after=deferred_until)]
    before = backend.store.database_now()
    backend.store.insert(tasks)
    assert all(t.pk is not None for t in tasks)
    rows = {row.pk: row for row in TaskRecord.objects.all()}
    ids = [t.pk for t in tasks if t.pk is not None]
    assert set(rows) == set(ids)
    now_row, deferred_row = rows[ids[0]], rows[ids[1]]
    assert (now_row.status, now_row.attempt_count, now_row.priority) == (READY, 0, 3)
    assert now_row.arguments == {"args": [1, 2], "kwargs": {}}
    assert tasks[0].available_after == now_row.available_after
    assert now_row.available_after >= before - timedelta(seconds=1)
    assert deferred_row.available_after == deferred_until


def test_task_reads_a_row_with_its_attempts_of_this_backend_only(
    backend: DatabaseBackend,
) -> None:
    failed = fail_once(backend.store)
    record, attempts = backend.store.task(failed.pk)
    assert record.pk == failed.pk
    assert [(a.status, a.error.exception_class_path) for a in attempts] == [
        (FAILED, "builtins.ValueError")
    ]
    other = enqueue(backend_name="elsewhere")
    with pytest.raises(TaskRecord.DoesNotExist):
        backend.store.task(other.pk)


def test_tasks_of_reads_one_path_newest_first(backend: DatabaseBackend) -> None:
    first, second = add.enqueue(1, 1), add.enqueue(2, 2)
    low.enqueue(3)
    found = [
        (str(record.pk), attempts) for record, attempts in backend.store.tasks_of(add.module_path)
    ]
    assert found == [(second.id, []), (first.id, [])]


def test_histories_group_attempts_by_task_oldest_first(task_options: object) -> None:
    backend = task_options(max_attempts=3, backoff_factor=0)  # type: ignore[operator]
    row = enqueue()
    for worker in ("w1", "w2"):
        finish_failed(backend.store, claim_due(backend.store, worker))
    untouched = enqueue()
    histories = backend.store.histories([row.pk, untouched.pk])
    assert [(a.worker_id, a.error.exception_class_path) for a in histories[row.pk]] == [
        ("w1", "builtins.ValueError"),
        ("w2", "builtins.ValueError"),
    ]
    assert untouched.pk not in histories
    assert backend.store.histories([]) == {}


def test_release_unheld_hands_back_only_what_the_worker_holds_but_never_received(
    backend: DatabaseBackend,
) -> None:
    mine = [enqueue().pk for _ in range(3)]
    claim_all(backend.store, "w1")
    theirs = enqueue().pk
    claim_all(backend.store, "w2")
    assert backend.store.release_unheld(worker_id="w1", held=[mine[0]]) == 2
    rows = {row.pk: row for row in TaskRecord.objects.all()}
    assert (rows[mine[0]].status, rows[mine[0]].worker_id) == (RUNNING, "w1")
    for pk in mine[1:]:
        assert (rows[pk].status, rows[pk].worker_id, rows[pk].attempt_count) == (READY, "", 0)
    assert rows[theirs].worker_id == "w2"
    assert backend.store.release_unheld(worker_id="w1", held=[mine[0]]) == 0


def test_delete_removes_tasks_with_their_attempts_but_not_running_ones(
    backend: DatabaseBackend,
) -> None:
    failed = fail_once(backend.store)
    enqueue()
    (running,) = claim_all(backend.store, "w1")
    ready = enqueue()
    applied = backend.store.delete([failed.pk, ready.pk, running.pk, 10**12])
    assert sorted(applied.changed) == sorted([failed.pk, ready.pk])
    assert sorted(applied.refused) == sorted([running.pk, 10**12])
    assert list(TaskRecord.objects.values_list("pk", flat=True)) == [running.pk]
    assert not Attempt.objects.exists()


def test_the_registry_keeps_served_and_excluded_queues(backend: DatabaseBackend) -> None:
    store = backend.store
    queues = QueueFilter(exclude=frozenset({"low_priority"}))
    store.register_worker(worker_id="w1", host="h", pid=7, queues=queues)
    row = store.worker("w1")
    assert row is not None
    assert (row.host, row.pid, row.queues, row.excluded_queues) == ("h", 7, [], ["low_priority"])
    assert [w.worker_id for w in store.workers()] == ["w1"]
    assert store.heartbeat("w1")
    store.deregister_worker("w1")
    assert store.worker("w1") is None
    assert not store.heartbeat("w1")  # gone: the worker must register again
    assert store.workers() == []


def test_a_lease_is_taken_renewed_and_refused_on_the_database_clock(
    backend: DatabaseBackend,
) -> None:
    store, minute = backend.store, timedelta(minutes=1)
    assert store.take_lease("upkeep", holder="a", duration=minute)
    assert not store.take_lease("upkeep", holder="b", duration=minute)
    assert store.renew_lease("upkeep", holder="a", duration=minute)
    assert not store.renew_lease("upkeep", holder="b", duration=minute)
    Lease.objects.filter(name="upkeep").update(expires_at=ago(seconds=1))
    assert not store.renew_lease("upkeep", holder="a", duration=minute)
    assert store.take_lease("upkeep", holder="b", duration=minute)


def test_count_purgeable_counts_what_purge_deletes(backend: DatabaseBackend) -> None:
    store, week = backend.store, timedelta(days=7)
    for _ in range(3):
        succeed_once(store)
    TaskRecord.objects.update(finished_at=ago(days=8))
    succeed_once(store)
    enqueue(enqueued_at=ago(days=8), available_after=ago(days=8))
    assert store.count_purgeable(finished=True, older_than=week) == 3
    assert store.count_purgeable(finished=False, older_than=week) == 1
    assert store.purge(finished=True, older_than=week, batch_size=2) == 3
    assert store.count_purgeable(finished=True, older_than=week) == 0


def test_database_now_is_the_servers_clock(backend: DatabaseBackend) -> None:
    now = backend.store.database_now()
    assert timezone.is_aware(now)
    assert abs(now - timezone.now()) < timedelta(seconds=5)


def test_status_counts_by_queue_and_status(backend: DatabaseBackend) -> None:
    store = backend.store
    fail_once(store)
    succeed_once(store)
    enqueue(available_after=ago(minutes=2))
    enqueue(available_after=later(hours=1))
    low.enqueue(1)
    counts = {(c.queue_name, c.status): c.count for c in store.status_counts()}
    assert counts == {
        ("default", FAILED): 1,
        ("default", "SUCCESSFUL"): 1,
        ("default", READY): 2,
        ("low_priority", READY): 1,
    }
    due = {d.queue_name: d for d in store.due_counts()}
    assert due["default"].count == 1  # the deferred task is not due
    assert due["default"].oldest_wait >= timedelta(minutes=1)
    assert due["low_priority"].count == 1
    recent = {(c.queue_name, c.status): c for c in store.finished_counts(since=timedelta(hours=1))}
    assert recent[("default", FAILED)].count == recent[("default", FAILED)].last_minute == 1
    assert recent[("default", "SUCCESSFUL")].count == 1


@pytest.mark.django_db(transaction=True)  # a connection inside a transaction stays open
def test_reset_connection_drops_it_and_the_next_operation_reconnects(
    backend: DatabaseBackend,
) -> None:
    backend.store.database_now()
    backend.store.reset_connection()
    assert connection.connection is None
    assert backend.store.database_now() is not None


@pytest.mark.django_db(transaction=True)
def test_the_wakeup_source_hears_wake_workers(backend: DatabaseBackend) -> None:
    source = backend.store.wakeup_source()
    if connection.vendor != "postgresql":
        assert source is None  # workers poll
        backend.store.wake_workers()  # nothing to wake; must not fail
        return
    assert source is not None
    woken = threading.Semaphore(0)
    stopping = threading.Event()
    thread = threading.Thread(target=source.listen, args=(woken.release, stopping))
    thread.start()
    try:
        assert woken.acquire(timeout=10)  # once listening, for what came before
        backend.store.wake_workers()
        assert woken.acquire(timeout=10)
    finally:
        stopping.set()
        thread.join(10)
    assert not thread.is_alive()
