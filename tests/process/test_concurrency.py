"""Concurrency inside one worker, the supervisor of several, and wake-ups of idle workers."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from conveyor import enqueue_many
from conveyor.compat import TaskResultStatus
from conveyor.models import WorkerRecord
from conveyor.store.listen import QUEUES_CHANNEL
from tests.conftest import wait_until
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import async_rendezvous, async_sleep, record, span

pytestmark = pytest.mark.process


def run_starts(label: str) -> list[Any]:
    return list(Execution.objects.filter(label=label).values_list("created_at", flat=True))


def test_concurrency_runs_sync_tasks_at_the_same_time(start_worker: Any) -> None:
    for _ in range(4):
        record.enqueue("sync", sleep=2)
    worker = start_worker("--oneshot", "--concurrency", "2")
    assert worker.wait(60) == 0, worker.log()
    starts = sorted(run_starts("sync"))
    assert len(starts) == 4
    # Two at once, then the next two: never more than the limit, never one at a time.
    assert starts[1] - starts[0] < timedelta(seconds=1)
    assert starts[3] - starts[2] < timedelta(seconds=1)
    assert starts[2] - starts[0] >= timedelta(seconds=1.9)


def test_async_tasks_run_together_on_the_event_loop(start_worker: Any) -> None:
    sleepers = [async_sleep.enqueue(2) for _ in range(3)]
    started = time.monotonic()
    worker = start_worker("--oneshot", "--concurrency", "3")
    assert worker.wait(60) == 0, worker.log()
    for result in sleepers:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
    # Three two-second sleeps overlapped: their spans intersect.
    latest_start = max(r.started_at for r in sleepers if r.started_at)
    earliest_finish = min(r.finished_at for r in sleepers if r.finished_at)
    assert latest_start < earliest_finish
    assert time.monotonic() - started < 30


def test_one_thread_slot_leaves_hundreds_of_async_tasks_in_flight_and_sync_ones_in_turn(
    start_worker: Any,
) -> None:
    waiting = enqueue_many(async_rendezvous, [(("crowd", 200), {})] * 200)
    # Sync tasks among them, each of which needs the one thread slot.
    awake = [span.enqueue(0.3) for _ in range(3)]
    worker = start_worker("--oneshot", "--concurrency", "1")
    assert worker.wait(90) == 0, worker.log()
    # Measured from the spans the tasks recorded themselves, not from speed: each waited
    # until all 200 were in flight, and the sync tasks ran one at a time.
    assert most_at_once(spans(waiting)) == 200
    assert most_at_once(spans(awake)) == 1


def spans(results: list[Any]) -> list[tuple[float, float]]:
    """The (start, end) each task returned."""
    found = []
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        start, end = result.return_value
        found.append((start, end))
    return found


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans that hold one instant in common."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:  # at a tie an end (-1) sorts first: touching spans do not overlap
        running += step
        most = max(most, running)
    return most


def test_supervisor_replaces_a_dead_worker_and_forwards_sigterm(start_worker: Any) -> None:
    options = {"heartbeat_interval": 0.5, "worker_timeout": 2}
    supervisor = start_worker("--processes", "2", options=options)
    wait_until(lambda: WorkerRecord.objects.count() == 2, timeout=30, what="two workers")
    first_pids = set(WorkerRecord.objects.values_list("pid", flat=True))
    assert supervisor.pid not in first_pids
    victim = min(first_pids)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(set(WorkerRecord.objects.values_list("pid", flat=True)) - first_pids) == 1,
        timeout=30,
        what="a replacement worker",
    )
    # The survivor's recovery removes the dead child's row.
    wait_until(
        lambda: not WorkerRecord.objects.filter(pid=victim).exists(),
        timeout=30,
        what="the dead worker to leave the registry",
    )
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(30) == 0, supervisor.log()
    assert not WorkerRecord.objects.exists()


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="LISTEN/NOTIFY exists on PostgreSQL only"
)
def test_notify_wakes_an_idle_worker_long_before_its_poll(start_worker: Any) -> None:
    start_worker("--delay-min", "20000", "--delay-max", "20000")
    wait_until(listening, what="the worker's listener to connect")
    for n in range(5):
        enqueued = time.time()
        result = record.enqueue(f"wake-{n}")
        runs = Execution.objects.filter(result_id=result.id, label=f"wake-{n}")
        wait_until(runs.exists, timeout=15, what="the task to start")
        started = runs.get().created_at
        # The poll would take 20 s; a notification takes milliseconds. Generous bound.
        assert started.timestamp() - enqueued < 3


def test_an_idle_worker_without_notifications_polls_within_delay_max(start_worker: Any) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL wakes by notification; see the test above")
    worker = start_worker(
        "--delay-min", "50", "--delay-max", "500", env={"CONVEYOR_TEST_LOG_LEVEL": "DEBUG"}
    )
    wait_until(
        lambda: "idle; looks again in 0.500s" in worker.log(),
        what="the idle worker to back off to delay-max",
    )
    enqueued = time.time()
    result = record.enqueue("polled")
    runs = Execution.objects.filter(result_id=result.id, label="polled")
    wait_until(runs.exists, timeout=15, what="the task to start")
    started = runs.get().created_at
    assert started.timestamp() - enqueued < 0.5 + 2.5


def listening() -> bool:
    """Whether a session of this database waits on conveyor's notification channels (the
    wake-up listener's last statement LISTENs to the queues' channel, after the tasks')."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query = %s",
            [f"LISTEN {QUEUES_CHANNEL}"],
        )
        (count,) = cursor.fetchone()
    return bool(count)


def test_ctrl_c_under_the_supervisor_lets_running_tasks_finish(start_worker: Any) -> None:
    results = [record.enqueue("grouped", sleep=3) for _ in range(2)]
    supervisor = start_worker("--processes", "2")
    wait_until(
        lambda: Execution.objects.filter(label="grouped").count() == 2,
        timeout=30,
        what="both tasks to start",
    )
    supervisor.signal_group(signal.SIGINT)
    assert supervisor.wait(30) == 0, supervisor.log()
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
    assert not WorkerRecord.objects.exists()


def test_workers_stop_when_their_supervisor_is_killed(start_worker: Any) -> None:
    supervisor = start_worker("--processes", "2", "--delay-max", "200")
    wait_until(lambda: WorkerRecord.objects.count() == 2, timeout=30, what="two workers")
    supervisor.signal(signal.SIGKILL)
    # Each child gets SIGTERM when its parent dies, stops cleanly and leaves the registry.
    wait_until(lambda: not WorkerRecord.objects.exists(), timeout=30, what="the workers to stop")
