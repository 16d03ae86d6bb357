"""Automatic retention on every database: what it deletes, in what batches, under one lease."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import Attempt, Lease, TaskRecord, WorkerRecord
from conveyor.worker.leased import NamedLease
from conveyor.worker.retention import Retention
from tests.conftest import wait_until
from tests.factories import ago
from tests.operations.helpers import race
from tests.tasksapp.tasks import add

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED
AUTOMATIC = {"finished": "10 days", "unfinished": "20 days", "automatic": True}
LEASE = "retention:default"


def rows(count: int, **fields: Any) -> list[int]:
    """Insert task rows directly (fast), default backend and queue; return their ids."""
    fields = {
        "task_path": "tests.tasksapp.tasks.add",
        "backend_name": "default",
        "queue_name": "default",
        **fields,
    }
    created = TaskRecord.objects.bulk_create(
        [TaskRecord(**fields) for _ in range(count)], batch_size=500
    )
    return [r.pk for r in created]


def old_history(finished: int, stale: int = 0) -> tuple[list[int], list[int]]:
    """Results finished 11 days ago (each with an attempt), and READY tasks 30 days old on a
    queue that no worker serves (workers would run them otherwise)."""
    month_ago = ago(days=30)
    done = rows(finished, status=SUCCESSFUL, enqueued_at=month_ago, finished_at=ago(days=11))
    Attempt.objects.bulk_create(
        [
            Attempt(
                task_id=pk,
                worker_id="w",
                started_at=month_ago,
                stopped_at=month_ago,
                status=SUCCESSFUL,
            )
            for pk in done
        ],
        batch_size=500,
    )
    waiting = rows(
        stale,
        status=READY,
        queue_name="retired",
        enqueued_at=month_ago,
        available_after=month_ago,
    )
    return done, waiting


def retention(backend: DatabaseBackend, worker_id: str = "w1", **kwargs: Any) -> Retention:
    return Retention(backend.store, worker_id, stopping=threading.Event(), **kwargs)


def delete_sizes(queries: list[dict[str, str]]) -> list[int]:
    """How many ids each DELETE of task rows named."""
    sizes = []
    for query in queries:
        sql = query["sql"]
        if sql.upper().startswith("DELETE") and "conveyor_task" in sql.split("WHERE")[0]:
            (ids,) = re.findall(r"""\.["`]id["`] IN \(([^)]*)\)""", sql)
            sizes.append(len(ids.split(",")))
    return sizes


@pytest.mark.django_db
class TestRun:
    def test_deletes_old_results_and_stale_tasks_in_small_batches(self, task_options: Any) -> None:
        backend = task_options(purge=AUTOMATIC)
        old_history(finished=450, stale=30)
        kept = [
            *rows(5, status=SUCCESSFUL, finished_at=ago(days=2)),
            *rows(3, status=READY, enqueued_at=ago(days=1)),
            *rows(2, status=RUNNING, enqueued_at=ago(days=40), worker_id="w"),
        ]
        with CaptureQueriesContext(connection) as captured:
            run = retention(backend, batch_size=100).run()
        assert (run.leased, run.finished, run.unfinished, run.complete) == (True, 450, 30, True)
        assert sorted(TaskRecord.objects.values_list("pk", flat=True)) == sorted(kept)
        assert not Attempt.objects.exists()
        sizes = delete_sizes(captured.captured_queries)
        assert len(sizes) >= 5
        assert max(sizes) <= 100
        assert sum(sizes) == 480

    def test_does_nothing_unless_automatic(self, backend: DatabaseBackend) -> None:
        assert backend.config.purge.automatic is False
        old_history(finished=3, stale=3)
        assert retention(backend).run_if_due() is None
        assert TaskRecord.objects.count() == 6
        assert not Lease.objects.exists()

    def test_only_the_configured_cut_offs_apply(self, task_options: Any) -> None:
        backend = task_options(purge={"finished": "10 days", "automatic": True})
        _, stale = old_history(finished=4, stale=4)
        run = retention(backend).run()
        assert (run.finished, run.unfinished) == (4, 0)
        assert sorted(TaskRecord.objects.values_list("pk", flat=True)) == sorted(stale)

    def test_a_backlog_continues_at_the_next_tick_not_after_the_interval(
        self, task_options: Any
    ) -> None:
        backend = task_options(purge=AUTOMATIC)
        old_history(finished=10)
        worker = retention(backend, batch_size=4)
        worker.budget = timedelta(0)  # out of time before the first batch
        first = worker.run_if_due()
        assert first is not None
        assert (first.leased, first.deleted, first.complete) == (True, 0, False)
        worker.budget = timedelta(seconds=30)
        second = worker.run_if_due()
        assert second is not None
        assert (second.deleted, second.complete) == (10, True)
        assert worker.run_if_due() is None  # done: the next run waits for the interval

    def test_stops_between_batches_when_the_worker_stops(self, task_options: Any) -> None:
        backend = task_options(purge=AUTOMATIC)
        old_history(finished=10)
        worker = retention(backend, batch_size=4)
        worker.stopping.set()
        run = worker.run()
        assert (run.leased, run.deleted, run.complete) == (True, 0, False)
        assert TaskRecord.objects.count() == 10


@pytest.mark.django_db
class TestLease:
    def lease(self, holder: str, backend: DatabaseBackend) -> NamedLease:
        return NamedLease(backend.store, LEASE, holder, timedelta(minutes=5))

    def test_the_holder_keeps_it_and_another_takes_it_once_it_expires(
        self, backend: DatabaseBackend
    ) -> None:
        a, b = self.lease("a", backend), self.lease("b", backend)
        assert a.take()
        assert not b.take()
        assert a.take()
        assert a.renew()
        assert not b.renew()
        Lease.objects.filter(name=LEASE).update(expires_at=Now() - timedelta(seconds=1))
        assert not a.renew()  # an expired lease is not ours to extend
        assert b.take()
        assert not a.take()
        assert Lease.objects.get(name=LEASE).holder == "b"

    def test_a_worker_without_the_lease_purges_nothing(self, task_options: Any) -> None:
        backend = task_options(purge=AUTOMATIC)
        old_history(finished=5)
        assert self.lease("someone-else", backend).take()
        run = retention(backend, "w1").run()
        assert (run.leased, run.deleted) == (False, 0)
        assert TaskRecord.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_one_of_many_racing_workers_takes_the_lease(backend: DatabaseBackend) -> None:
    for _ in range(5):
        takers = [NamedLease(backend.store, LEASE, f"w{i}", timedelta(minutes=1)) for i in range(6)]
        won = race(6, lambda i, takers=takers: takers[i].take())
        assert won.count(True) == 1, won
        assert Lease.objects.get(name=LEASE).holder == f"w{won.index(True)}"
        Lease.objects.update(expires_at=Now() - timedelta(seconds=1))


@pytest.mark.django_db(transaction=True)
def test_racing_retention_runs_purge_with_one_worker_only(task_options: Any) -> None:
    backend = task_options(purge=AUTOMATIC)
    old_history(finished=1200, stale=100)

    def run(index: int) -> Any:
        worker = retention(backend, f"w{index}", batch_size=100)
        worker.budget = timedelta(seconds=60)
        return worker.run()

    runs = race(4, run)
    leased = [r for r in runs if r.leased]
    assert len(leased) == 1, runs
    assert (leased[0].finished, leased[0].unfinished) == (1200, 100)
    assert all(r.deleted == 0 for r in runs if not r.leased)
    assert not TaskRecord.objects.exists()


@pytest.mark.process
def test_live_workers_purge_under_one_lease_and_hand_it_over_when_the_holder_dies(
    start_worker: Any,
) -> None:
    # Short beats make retention run often; the timeout (and so the lease) is generous, so
    # that a stalled thread on a busy machine does not pass the lease on while both live.
    options = {"purge": AUTOMATIC, "heartbeat_interval": 0.2, "worker_timeout": 3}
    old_history(finished=1500, stale=100)
    workers = {name: start_worker("--id", name, options=options) for name in ("ret-a", "ret-b")}
    wait_until(lambda: WorkerRecord.objects.count() == 2, what="both workers to register")
    holders: set[str] = set()

    def purged() -> bool:
        holders.update(Lease.objects.filter(name=LEASE).values_list("holder", flat=True))
        return not TaskRecord.objects.exists()

    wait_until(purged, timeout=60, what="retention to purge the old history")
    assert len(holders) == 1, holders
    (holder,) = holders
    assert holder in workers
    # Task processing goes on alongside.
    result = add.enqueue(2, 2)
    wait_until(lambda: TaskRecord.objects.filter(pk=result.id, status=SUCCESSFUL).exists())
    workers[holder].kill()
    (survivor,) = set(workers) - {holder}
    old_history(finished=300)
    wait_until(
        lambda: not TaskRecord.objects.filter(status=SUCCESSFUL, finished_at__lt=ago(days=5)),
        timeout=60,
        what="the surviving worker to take the lease over and purge",
    )
    assert Lease.objects.get(name=LEASE).holder == survivor, workers[survivor].log()
