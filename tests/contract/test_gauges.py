"""Engine.gauges(): what a metrics scrape reads, on every database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.backend import DatabaseBackend
from conveyor.models import TaskRecord, WorkerRecord
from conveyor.store import QueueFilter
from tests.factories import ago, claim_all, enqueue, later
from tests.operations.helpers import fail_once, succeed_once
from tests.tasksapp.tasks import low

pytestmark = pytest.mark.django_db


def test_gauges_count_due_deferred_and_running_tasks_and_live_workers(
    backend: DatabaseBackend,
) -> None:
    store = backend.store
    succeed_once(store)  # history: not counted
    enqueue(available_after=ago(minutes=1))
    (running,) = claim_all(store, "w1")
    enqueue(available_after=ago(minutes=2))
    enqueue(available_after=later(hours=1))
    enqueue(low, 5)
    store.register_worker(worker_id="w1", host="h", pid=1, queues=QueueFilter())
    store.register_worker(worker_id="w2", host="h", pid=2, queues=QueueFilter())
    WorkerRecord.objects.filter(worker_id="w2").update(last_heartbeat_at=ago(hours=1))

    gauges = store.gauges()

    queues = {q.queue_name: q for q in gauges.queues}
    assert set(queues) == {"default", "low_priority"}
    default = queues["default"]
    assert (default.due, default.deferred, default.running) == (1, 1, 1)
    assert timedelta(minutes=2) <= default.oldest_due_wait < timedelta(minutes=5)
    assert (queues["low_priority"].due, queues["low_priority"].running) == (1, 0)
    assert gauges.workers_alive == 1
    assert running.status == "RUNNING"


def test_gauges_of_an_empty_backend(backend: DatabaseBackend) -> None:
    gauges = backend.store.gauges()
    assert (gauges.queues, gauges.workers_alive) == ([], 0)


def test_activity_counts_finished_tasks_per_bucket_and_lists_waits_and_failures(
    backend: DatabaseBackend,
) -> None:
    store = backend.store
    done = succeed_once(store)
    failed = fail_once(store)
    old = succeed_once(store)
    TaskRecord.objects.filter(pk=old.pk).update(finished_at=ago(hours=2))
    assert done.last_attempted_at is not None
    TaskRecord.objects.filter(pk=done.pk).update(
        available_after=done.last_attempted_at - timedelta(seconds=30)
    )

    activity = store.activity(since=timedelta(hours=1), bucket="minute", sample=10, top=5)

    assert sorted((status, n) for _, status, n in activity.finished) == [
        ("FAILED", 1),
        ("SUCCESSFUL", 1),
    ]
    for start, _, _ in activity.finished:
        assert (start.second, start.microsecond) == (0, 0)
        assert activity.now - timedelta(minutes=2) < start <= activity.now
    waits = sorted(wait for _, wait in activity.waits)
    assert len(waits) == 2
    assert timedelta(seconds=29) < waits[-1] < timedelta(seconds=31)
    assert activity.failing == [(failed.task_path, 1)]
    day = store.activity(since=timedelta(days=1), bucket="hour", sample=1, top=5)
    assert sum(n for _, _, n in day.finished) == 3
    assert len(day.waits) == 1  # the sample is capped
    with pytest.raises(ValueError, match="bucket"):
        store.activity(since=timedelta(hours=1), bucket="week", sample=1, top=1)
