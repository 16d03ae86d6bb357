"""The worker loop in this process, on the real store of each database: batching of writes,
claims into thread and async slots, idle waits, reconciliation after a lost claim reply,
hard stops and outages."""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import InterfaceError, connection, connections
from django.db.utils import load_backend

from conveyor.backend import DatabaseBackend
from conveyor.compat import TASKS_LOGGER, TaskResultStatus, task_finished, task_started
from conveyor.exceptions import WorkerInterrupted
from conveyor.models import Attempt, TaskRecord
from conveyor.store import Engine, QueueFilter, Written, store_for
from conveyor.worker.announce import Announcer
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.identity import Identity
from conveyor.worker.loop import EXIT_INTERRUPTED, EXIT_OK, Worker, WorkerParts, WorkerSettings
from conveyor.worker.maintenance import Maintenance
from conveyor.worker.outcomes import OutcomeBuffer
from conveyor.worker.pool import ExecutionPool
from tests.conftest import wait_until
from tests.factories import later
from tests.tasksapp.tasks import RELEASE, async_sleep, fail, held, noop

pytestmark = pytest.mark.django_db(transaction=True)

SUCCESSFUL, RUNNING = TaskResultStatus.SUCCESSFUL, TaskResultStatus.RUNNING
WORKER_ID = "in-process"


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingEvent(threading.Event):
    """An Event whose timed waits return at once and are recorded: the loop's sleeps, seen."""

    def __init__(self, on_wait: Callable[[list[float]], None] = lambda waits: None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.on_wait = on_wait

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            return super().wait()
        self.waits.append(timeout)
        self.on_wait(self.waits)
        return self.is_set()


@dataclass
class Built:
    worker: Worker
    clock: Clock


def build(
    store: Engine,
    *,
    concurrency: int = 4,
    async_concurrency: int = 1000,
    batch_size: int = 200,
    wakeup: threading.Event | None = None,
) -> Built:
    """A worker assembled from real parts, with a clock for its write batches."""
    clock = Clock()
    wakeup = wakeup or threading.Event()
    health = DatabaseHealth()
    identity = Identity(WORKER_ID, socket.gethostname(), 1)
    settings = WorkerSettings(
        queues=QueueFilter(), concurrency=concurrency, async_concurrency=async_concurrency
    )
    outcomes = OutcomeBuffer(on_added=wakeup.set, batch_size=batch_size, clock=clock)
    announcer = Announcer(store)
    parts = WorkerParts(
        store=store,
        identity=identity,
        wakeup=wakeup,
        health=health,
        pool=ExecutionPool(concurrency, outcomes.add, async_concurrency=async_concurrency),
        outcomes=outcomes,
        announcer=announcer,
        heartbeat=Heartbeat(store, identity, settings.queues, health),
        maintenance=Maintenance(store, WORKER_ID, on_written=announcer.announce, health=health),
        listener=None,
    )
    return Built(Worker(parts, settings), clock)


@pytest.fixture
def built(backend: DatabaseBackend) -> Iterator[Built]:
    made = build(backend.store)
    yield made
    RELEASE.set()
    made.worker.pool.close()
    RELEASE.clear()


def statuses(ids: list[str]) -> list[str]:
    return [TaskRecord.objects.get(pk=pk).status for pk in ids]


def run_claimed(worker: Worker, count: int) -> None:
    """Wait until `count` outcomes wait in the worker's buffer."""
    wait_until(lambda: len(worker.outcomes) == count, what=f"{count} outcomes")


def test_a_full_batch_is_written_without_waiting_for_the_delay(backend: DatabaseBackend) -> None:
    worker = build(backend.store, concurrency=4, batch_size=4).worker
    ids = [noop.enqueue().id for _ in range(8)]
    assert worker.step() == 4
    run_claimed(worker, 4)
    assert worker.step() == 4  # slots were free again; the clock has not moved
    assert statuses(ids[:4]) == [SUCCESSFUL] * 4
    run_claimed(worker, 4)
    worker.pool.close()


def test_a_batch_below_its_size_waits_for_the_delay(backend: DatabaseBackend) -> None:
    made = build(backend.store, concurrency=4, batch_size=100)
    worker = made.worker
    ids = [noop.enqueue().id for _ in range(8)]
    assert worker.step() == 4
    run_claimed(worker, 4)
    assert worker.step() == 4
    assert statuses(ids[:4]) == [RUNNING] * 4  # neither full nor old enough
    made.clock.now += 2 * worker.outcomes.delay
    worker.flush()
    assert statuses(ids[:4]) == [SUCCESSFUL] * 4
    worker.pool.close()


class Calls:
    """The real engine, recording what each finish_and_claim was given: (outcomes, limit)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def finish_and_claim(self, **kwargs: Any) -> tuple[list[Written], list[TaskRecord]]:
        self.calls.append((len(kwargs["outcomes"]), kwargs["limit"]))
        return self.engine.finish_and_claim(**kwargs)


def test_a_due_batch_travels_with_the_next_claim_and_a_dry_queue_sends_it_at_once(
    backend: DatabaseBackend,
) -> None:
    store = Calls(backend.store)
    made = build(store, concurrency=4, batch_size=100)
    worker = made.worker
    ids = [noop.enqueue().id for _ in range(6)]
    assert worker.step() == 4
    run_claimed(worker, 4)
    made.clock.now += 2 * worker.outcomes.delay  # the batch is due
    assert worker.step() == 2  # the four outcomes went with this claim
    run_claimed(worker, 2)
    # Nothing is due and the queue is empty: the two outcomes, not yet due, go at once,
    # with a second look at the queue.
    assert worker.step() == 0
    assert store.calls == [(0, 4), (4, 4), (0, 4), (2, 4)]
    assert statuses(ids) == [SUCCESSFUL] * 6
    worker.pool.close()


@pytest.fixture
def no_started_rows() -> Iterator[None]:
    """The test app's task_started receiver writes a row; for a coroutine it runs on an
    executor thread whose connection would outlive the test."""
    from tests.tasksapp.apps import record_signal

    task_started.disconnect(dispatch_uid="tasksapp.started")
    yield
    task_started.connect(record_signal, dispatch_uid="tasksapp.started")


@pytest.mark.usefixtures("no_started_rows")
def test_coroutines_leave_the_thread_slot_free_and_the_loop_claims_again_at_once(
    backend: DatabaseBackend,
) -> None:
    worker = build(backend.store, concurrency=1, async_concurrency=3).worker
    for _ in range(4):
        async_sleep.enqueue(0.3)
    # Each claim takes one task (one thread slot is free), which starts on the event loop.
    assert [worker.step() for _ in range(3)] == [1, 1, 1]
    assert worker.step() is None  # every async slot is taken
    run_claimed(worker, 3)
    assert worker.step() == 1
    run_claimed(worker, 4)
    worker.pool.close()


@pytest.mark.usefixtures("no_started_rows")
def test_a_sync_task_in_the_only_thread_slot_holds_the_claims(backend: DatabaseBackend) -> None:
    worker = build(backend.store, concurrency=1, async_concurrency=10).worker
    first = held.enqueue().id
    async_sleep.enqueue(0)
    assert worker.step() == 1
    # The next task could be sync: with no thread slot free, nothing is claimed.
    assert worker.step() is None
    assert statuses([first]) == [RUNNING]
    RELEASE.set()
    try:
        run_claimed(worker, 1)
        assert worker.step() == 1
        run_claimed(worker, 2)
    finally:
        RELEASE.clear()
        worker.pool.close()


def test_the_idle_wait_doubles_up_to_delay_max_and_ends_at_the_next_due_task(
    built: Built,
) -> None:
    worker = built.worker  # delay_min 50 ms, delay_max 1 s, no wake-up source
    assert [round(worker.idle_timeout(), 3) for _ in range(7)] == [
        0.05,
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
        1.0,
    ]
    noop.using(run_after=later(seconds=0.4)).enqueue()
    assert 0.05 <= worker.idle_timeout() <= 0.4


class ReplyLost:
    """The real engine, except that the first claim's reply is lost after it committed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def finish_and_claim(self, **kwargs: Any) -> tuple[list[Written], list[TaskRecord]]:
        found = self.engine.finish_and_claim(**kwargs)
        if not self.lost:
            self.lost = True
            raise InterfaceError("connection lost while reading the claim's reply")
        return found


def test_tasks_of_a_claim_whose_reply_was_lost_are_handed_back_then_run_once(
    backend: DatabaseBackend,
) -> None:
    worker = build(ReplyLost(backend.store), concurrency=2).worker
    ids = [noop.enqueue().id for _ in range(2)]
    with pytest.raises(InterfaceError):
        worker.step()
    assert statuses(ids) == [RUNNING] * 2  # held in the database, unknown to the worker
    assert worker.step() == 2  # reconciled first, then claimed again
    run_claimed(worker, 2)
    worker.flush(force=True)
    for pk in ids:
        row = TaskRecord.objects.get(pk=pk)
        assert (row.status, row.attempt_count) == (SUCCESSFUL, 1)
        assert Attempt.objects.filter(task_id=int(pk)).count() == 1
    worker.pool.close()


def test_a_second_stop_interrupts_running_tasks_and_records_them(built: Built) -> None:
    worker = built.worker
    result = held.enqueue()
    exit_status: list[int] = []
    thread = threading.Thread(target=lambda: exit_status.append(worker.run()))
    thread.start()
    wait_until(worker.pool.running, what="the task to start")
    worker.stop()
    worker.stop()
    thread.join(30)
    assert exit_status == [EXIT_INTERRUPTED]
    result.refresh()
    assert result.status == TaskResultStatus.FAILED  # max_attempts is 1 in the test settings
    (error,) = result.errors
    assert error.exception_class is WorkerInterrupted
    assert f"Worker '{WORKER_ID}' was stopped while the task was running" in error.traceback


@pytest.fixture
def unreachable(transactional_db: None) -> Iterator[str]:
    """A connection, in this thread, to a database server (or file) that cannot be reached.

    Made directly, not added to DATABASES: Django's test case allows such connections.
    """
    alias = "unreachable"
    settings = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        settings["NAME"] = "/nonexistent-directory/conveyor.sqlite3"
    else:
        settings["HOST"], settings["PORT"] = "127.0.0.1", "1"  # nothing listens there
    wrapper = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, alias)
    connections[alias] = wrapper
    yield alias
    wrapper.close()
    delattr(connections._connections, alias)  # type: ignore[attr-defined]


def test_an_outage_backs_off_on_the_schedule_and_is_logged_once(
    backend: DatabaseBackend, unreachable: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_for(backend_name="default", options=backend.config, using=unreachable)
    waits_before_stop = 8
    worker: Worker | None = None

    def stop_after_enough(waits: list[float]) -> None:
        if len(waits) == waits_before_stop and worker is not None:
            worker.stop()

    wakeup = RecordingEvent(stop_after_enough)
    worker = build(store, wakeup=wakeup).worker
    with caplog.at_level(logging.ERROR, logger="conveyor"):
        assert worker.run() == EXIT_OK  # stopped before the database could be reached
    assert wakeup.waits == [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0]
    unavailable = [r for r in caplog.records if "Database unavailable" in r.getMessage()]
    assert len(unavailable) == 1


def test_task_finished_receivers_see_the_exception_of_a_failed_task(
    built: Built, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[type[BaseException] | None, str]] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        kind, exc, _ = sys.exc_info()
        seen.append((kind, str(exc)))

    task_finished.connect(receiver)
    try:
        fail.enqueue("the message")
        worker = built.worker
        worker.step()
        run_claimed(worker, 1)
        with caplog.at_level(logging.ERROR, logger=TASKS_LOGGER):
            worker.flush(force=True)
    finally:
        task_finished.disconnect(receiver)
    assert seen == [(ValueError, "the message")]
    # Django's own receiver logs the failure with its traceback, as for its own backends.
    (logged,) = [r for r in caplog.records if r.name == TASKS_LOGGER and r.levelno >= logging.ERROR]
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], ValueError)
    assert sys.exc_info() == (None, None, None)


def test_a_failing_task_finished_receiver_is_logged_and_the_other_tasks_are_announced(
    built: Built, caplog: pytest.LogCaptureFixture
) -> None:
    announced: list[str] = []

    def broken(sender: Any, task_result: Any, **kwargs: Any) -> None:
        if not announced:
            announced.append("broken")
            raise RuntimeError("a receiver's bug")
        announced.append(task_result.id)

    task_finished.connect(broken)
    try:
        ids = [noop.enqueue().id for _ in range(2)]
        worker = built.worker
        worker.step()
        run_claimed(worker, 2)
        with caplog.at_level(logging.ERROR, logger="conveyor"):
            worker.flush(force=True)  # does not raise: the loop goes on
    finally:
        task_finished.disconnect(broken)
    assert statuses(ids) == [SUCCESSFUL] * 2
    assert len(announced) == 2
    assert announced[1] in ids  # the next task's receivers still ran
    (logged,) = [r for r in caplog.records if "receiver failed" in r.getMessage()]
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], RuntimeError)


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="planner settings are PostgreSQL's")
def test_a_receiver_on_the_worker_connection_plans_with_the_default_settings(
    built: Built,
) -> None:
    plans: list[str] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        with connection.cursor() as cursor:  # the loop thread's connection, as the worker's
            cursor.execute("EXPLAIN SELECT * FROM conveyor_worker WHERE worker_id > 'a'")
            plans.append(" ".join(row[0] for row in cursor.fetchall()))

    task_finished.connect(receiver)
    try:
        noop.enqueue()
        worker = built.worker
        worker.step()
        run_claimed(worker, 1)
        worker.flush(force=True)
    finally:
        task_finished.disconnect(receiver)
    (plan,) = plans
    assert "Seq Scan" in plan, plan
