"""Periodic tasks and paused queues with real worker processes: each tick once however many
workers race for it, missed ticks caught up per policy, and a queue paused mid-drain."""

from __future__ import annotations

import io
import itertools
import signal
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import PausedQueue, ScheduleTick, TaskRecord, WorkerRecord
from tests.conftest import wait_until
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import record

pytestmark = pytest.mark.process

NOOP = "tests.tasksapp.tasks.noop"
HOUR = timedelta(hours=1)


def ticks_of(name: str) -> list[datetime]:
    rows = TaskRecord.objects.filter(schedule_name=name).order_by("schedule_tick")
    return [tick for tick in rows.values_list("schedule_tick", flat=True) if tick is not None]


def stop(*workers: Any) -> None:
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait() == 0, worker.log()


def test_four_workers_enqueue_each_tick_of_a_one_second_schedule_once(
    start_worker: Any,
) -> None:
    # "all" with a short window: a worker held up by a busy machine fills its own gap.
    every_second = {"task": NOOP, "every": 1, "catch_up": "all", "catch_up_window": 3}
    options = {"periodic": {"every-second": every_second}}
    workers = [start_worker(options=options) for _ in range(4)]
    wait_until(lambda: len(ticks_of("every-second")) >= 21, timeout=60, what="21 ticks")
    stop(*workers)
    ticks = ticks_of("every-second")
    assert len(ticks) == len(set(ticks)), "a tick was enqueued twice"
    assert {later - earlier for earlier, later in itertools.pairwise(ticks)} == {
        timedelta(seconds=1)
    }
    assert all(tick.microsecond == 0 for tick in ticks)
    # Past the start-up catch-up, each tick is enqueued within a second of its time (the
    # database's clock); the tolerance of one covers a moment when the machine held all four.
    rows = TaskRecord.objects.filter(schedule_tick__gt=ticks[3]).values_list(
        "schedule_tick", "enqueued_at"
    )
    late = [(tick, at) for tick, at in rows if tick is None or at - tick >= timedelta(seconds=1)]
    assert len(late) <= 1, late
    assert TaskRecord.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() >= 20


def test_two_workers_racing_for_the_same_ticks_enqueue_each_once(start_worker: Any) -> None:
    # Both sleep until the same instant of the database clock, so they race for each tick.
    options = {"periodic": {"race": {"task": NOOP, "every": 1, "catch_up": "none"}}}
    debug = {"CONVEYOR_TEST_LOG_LEVEL": "DEBUG"}
    workers = [start_worker(options=options, env=debug) for _ in range(2)]

    def raced() -> bool:
        return any(
            "schedule=race tick=" in w.log() and "already enqueued" in w.log() for w in workers
        )

    wait_until(lambda: len(ticks_of("race")) >= 5 and raced(), what="a lost race")
    stop(*workers)
    ticks = ticks_of("race")
    assert len(ticks) == len(set(ticks))
    won = sum(w.log().count("enqueued by schedule=race") for w in workers)
    assert won == len(ticks)


def test_a_starting_worker_catches_up_missed_ticks_per_policy(
    start_worker: Any, backend: DatabaseBackend
) -> None:
    now = backend.store.database_now()
    latest = now.replace(minute=0, second=0, microsecond=0)
    last = latest - 5 * HOUR  # the last tick enqueued, five hours ago
    policies = ("none", "latest", "all")
    for policy in policies:
        ScheduleTick.objects.create(backend_name="default", schedule_name=policy, tick=last)
    periodic = {p: {"task": NOOP, "every": "1 hour", "catch_up": p} for p in policies}
    debug = {"CONVEYOR_TEST_LOG_LEVEL": "INFO"}
    # Ticks are enqueued by the scheduling worker alone; the other one (which schedules
    # nothing, though given the schedules) only runs tasks.
    worker = start_worker("--no-schedule", options={"periodic": periodic}, env=debug)
    scheduler = start_worker(options={"periodic": periodic}, env=debug)
    wait_until(lambda: len(ticks_of("all")) >= 5, what="five missed ticks")
    wait_until(lambda: WorkerRecord.objects.count() == 2, what="both workers to register")
    stop(scheduler, worker)
    assert "enqueued by schedule" not in worker.log()
    assert "enqueued by schedule" in scheduler.log()
    caught_up = ticks_of("all")
    assert caught_up == [last + HOUR * n for n in range(1, len(caught_up) + 1)]
    assert ticks_of("latest") == caught_up[-1:]
    assert [tick for tick in ticks_of("none") if tick <= now] == []


def test_a_paused_queue_stops_a_running_drain_and_resumes(start_worker: Any) -> None:
    results = [record.enqueue(label=str(n), sleep=0.1) for n in range(40)]
    worker = start_worker("--concurrency", "2", "--no-schedule")
    wait_until(lambda: Execution.objects.count() >= 4, what="the drain to start")
    call_command("conveyor_queue", "pause", "default", stdout=io.StringIO())
    paused_at = PausedQueue.objects.get(queue_name="default").paused_at
    wait_until(
        lambda: not TaskRecord.objects.filter(status=TaskResultStatus.RUNNING).exists(),
        what="the running tasks to finish",
    )
    late = record.enqueue(label="late")  # enqueueing goes on
    ready = TaskRecord.objects.filter(status=TaskResultStatus.READY).count()
    # Nothing to await here: the claim is that nothing happens while the queue is paused.
    time.sleep(1.5)
    assert TaskRecord.objects.filter(status=TaskResultStatus.READY).count() == ready > 1
    started = TaskRecord.objects.values_list("started_at", flat=True)
    assert max(t for t in started if t is not None) <= paused_at + timedelta(seconds=1)
    listed = io.StringIO()
    call_command("conveyor_queue", "list", stdout=listed)
    assert listed.getvalue().startswith("default  paused since ")
    call_command("conveyor_queue", "resume", "default", stdout=io.StringIO())
    wait_until(
        lambda: TaskRecord.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == 41,
        what="the drain to finish after resume",
    )
    stop(worker)
    assert {str(r.id) for r in results} | {late.id} == {
        str(pk) for pk in TaskRecord.objects.values_list("pk", flat=True)
    }


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            {"task": "tests.tasksapp.tasks.missing", "cron": "0 3 * * *"},
            "(conveyor.E002) TASKS['default'] OPTIONS periodic['nightly']['task']: cannot "
            "import 'tests.tasksapp.tasks.missing'",
        ),
        (
            {"task": NOOP, "cron": "0 3 * *"},
            "CommandError: TASKS['default'] OPTIONS periodic['nightly']['cron']: '0 3 * *' is "
            "not a cron expression: Wrong number of fields\n",
        ),
    ],
)
def test_a_wrong_schedule_stops_the_worker_before_it_starts(
    start_worker: Any, schedule: dict[str, Any], message: str
) -> None:
    worker = start_worker(options={"periodic": {"nightly": schedule}})
    assert worker.wait() == 1
    assert message in worker.log()
    assert "Traceback" not in worker.log()
    assert not WorkerRecord.objects.exists()
    assert not TaskRecord.objects.exists()
