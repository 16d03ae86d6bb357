"""Engine.gauges(): what a metrics scrape reads, on every database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.backend import DatabaseBackend
from conveyor.models import WorkerRecord
from conveyor.store import QueueFilter
from tests.factories import ago, claim_all, enqueue, later
from tests.operations.helpers import succeed_once
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
