"""Recovery of tasks held by lost workers, on every database."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import pytest
from django.db import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    connection,
    connections,
)

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.exceptions import WorkerIdInUse, WorkerLost
from conveyor.models import Attempt, RollupMark, TaskRecord, WorkerRecord
from conveyor.store import QueueFilter, Written
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.identity import Identity
from conveyor.worker.maintenance import Maintenance
from tests.factories import ago, claim_all, enqueue

READY, RUNNING, FAILED = (
    TaskResultStatus.READY,
    TaskResultStatus.RUNNING,
    TaskResultStatus.FAILED,
)
LOST = f"{WorkerLost.__module__}.{WorkerLost.__qualname__}"


def register(backend: DatabaseBackend, worker_id: str, *, last_seen: Any = None) -> None:
    backend.store.register_worker(worker_id=worker_id, host="h", pid=1, queues=QueueFilter())
    if last_seen is not None:
        WorkerRecord.objects.filter(worker_id=worker_id).update(last_heartbeat_at=last_seen)


@pytest.mark.django_db
def test_tasks_of_a_silent_worker_are_failed_with_worker_lost(task_options: Any) -> None:
    backend = task_options(max_attempts=1, heartbeat_interval=1, worker_timeout=5)
    register(backend, "dead")
    enqueue()
    (record,) = claim_all(backend.store, "dead")
    WorkerRecord.objects.filter(worker_id="dead").update(last_heartbeat_at=ago(seconds=30))
    written = backend.store.recover_lost(recovered_by="rescuer")
    assert [(w.outcome.record.pk, w.status) for w in written] == [(record.pk, FAILED)]
    result = backend.get_result(str(record.pk))
    assert result.status == FAILED
    assert result.worker_ids == ["dead"]
    (error,) = result.errors
    assert error.exception_class is WorkerLost
    assert "'dead' stopped sending heartbeats; last heartbeat at" in error.traceback
    assert "'rescuer'" in error.traceback
    assert not WorkerRecord.objects.filter(worker_id="dead").exists()


@pytest.mark.django_db
def test_recovered_task_is_retried_when_the_policy_allows(task_options: Any) -> None:
    backend = task_options(max_attempts=2, backoff_factor=0)
    enqueue()
    (record,) = claim_all(backend.store, "never-registered")
    (written,) = backend.store.recover_lost(recovered_by="rescuer")
    assert written.status == READY
    row = TaskRecord.objects.get(pk=record.pk)
    assert (row.status, row.worker_id, row.attempt_count) == (READY, "", 1)
    attempt = Attempt.objects.select_related("error").get(task_id=record.pk)
    assert attempt.worker_id == "never-registered"
    assert attempt.error.exception_class_path == LOST
    assert "is not registered" in attempt.error.traceback
    (again,) = claim_all(backend.store, "rescuer")
    assert again.attempt_count == 2


@pytest.mark.django_db
def test_tasks_of_live_workers_are_left_alone(backend: DatabaseBackend) -> None:
    register(backend, "alive")
    enqueue()
    claim_all(backend.store, "alive")
    assert backend.store.recover_lost(recovered_by="rescuer") == []
    assert TaskRecord.objects.get().status == RUNNING
    assert WorkerRecord.objects.filter(worker_id="alive").exists()


@pytest.mark.django_db
def test_recovery_twice_closes_the_attempt_once(backend: DatabaseBackend) -> None:
    enqueue()
    claim_all(backend.store, "gone")
    assert len(backend.store.recover_lost(recovered_by="a")) == 1
    assert backend.store.recover_lost(recovered_by="b") == []
    assert Attempt.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_recovery_closes_each_attempt_exactly_once(backend: DatabaseBackend) -> None:
    for _ in range(40):
        enqueue()
    claim_all(backend.store, "gone")
    barrier = threading.Barrier(4)
    counts: list[int] = []
    errors: list[BaseException] = []

    def recover(name: str) -> None:
        try:
            barrier.wait()
            counts.append(len(backend.store.recover_lost(recovered_by=name)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=recover, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(counts) == 40
    assert Attempt.objects.count() == 40
    assert not TaskRecord.objects.filter(status=RUNNING).exists()


@pytest.mark.django_db
def test_a_live_worker_id_cannot_be_registered_twice(backend: DatabaseBackend) -> None:
    register(backend, "same")
    with pytest.raises(WorkerIdInUse, match="'same' is in use by a live worker \\(host h, pid 1"):
        register(backend, "same")


@pytest.mark.django_db
def test_reusing_the_id_of_a_dead_worker_recovers_its_tasks(backend: DatabaseBackend) -> None:
    register(backend, "same")
    enqueue()
    (record,) = claim_all(backend.store, "same")
    WorkerRecord.objects.filter(worker_id="same").update(last_heartbeat_at=ago(minutes=5))
    register(backend, "same")
    row = TaskRecord.objects.get(pk=record.pk)
    assert row.status == FAILED
    assert Attempt.objects.get(task_id=record.pk).error.exception_class_path == LOST
    worker = WorkerRecord.objects.get(worker_id="same")
    assert worker.last_heartbeat_at > ago(minutes=1)


@pytest.mark.django_db
def test_heartbeat_reports_a_missing_row(backend: DatabaseBackend) -> None:
    register(backend, "beating", last_seen=ago(seconds=5))
    before = WorkerRecord.objects.get().last_heartbeat_at
    assert backend.store.heartbeat("beating")
    assert WorkerRecord.objects.get().last_heartbeat_at > before
    WorkerRecord.objects.all().delete()
    assert not backend.store.heartbeat("beating")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("error", "level"),
    [
        (InterfaceError("connection already closed"), logging.DEBUG),
        (RuntimeError("a bug in the heartbeat"), logging.ERROR),
    ],
    ids=["interface-error", "bug"],
)
def test_a_failed_beat_is_logged_and_the_next_one_runs(
    backend: DatabaseBackend, caplog: pytest.LogCaptureFixture, error: Exception, level: int
) -> None:
    health = DatabaseHealth()
    identity = Identity("beating", socket.gethostname(), os.getpid())
    heartbeat = Heartbeat(backend.store, identity, QueueFilter(), health)
    register(backend, "beating", last_seen=ago(seconds=5))
    before = WorkerRecord.objects.get().last_heartbeat_at

    def failing(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        raise error

    with caplog.at_level(logging.DEBUG, logger="conveyor"), connection.execute_wrapper(failing):
        heartbeat.beat()  # it raised out of the thread's loop and the beats ended
    assert WorkerRecord.objects.get().last_heartbeat_at == before
    heartbeat.beat()
    assert WorkerRecord.objects.get().last_heartbeat_at > before
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("Heartbeat failed")]
    assert logged.levelno == level
    assert (logged.exc_info is not None) == (level == logging.ERROR)


def rescuer(
    backend: DatabaseBackend, *, started_at: float
) -> tuple[list[float], DatabaseHealth, Maintenance, list[Written]]:
    """A worker's maintenance on a clock the test moves (now[0]), and what it recovers."""
    now = [started_at]
    health = DatabaseHealth(clock=lambda: now[0])
    recovered: list[Written] = []
    maintenance = Maintenance(backend.store, "rescuer", on_written=recovered.extend, health=health)
    return now, health, maintenance, recovered


@pytest.mark.django_db(transaction=True)
def test_a_chore_failing_without_an_outage_does_not_hold_recovery_up(task_options: Any) -> None:
    backend = task_options(max_attempts=1, heartbeat_interval=1, worker_timeout=5)
    now, health, maintenance, recovered = rescuer(backend, started_at=0.0)
    now[0] = 60.0  # the worker has reached its database for longer than worker_timeout
    mark_table = RollupMark._meta.db_table

    def schema_behind(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # A schema that lags the code: the rollup's table is missing.
        if mark_table in sql:
            raise ProgrammingError(f"relation {mark_table!r} does not exist")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(schema_behind):
        maintenance.run_once()  # the rollup fails; nothing to recover yet
        assert health.quiet_for() == 60.0
        enqueue()
        (record,) = claim_all(backend.store, "gone")
        maintenance.run_once()  # the rollup fails again, after recovery
    assert [written.outcome.record.pk for written in recovered] == [record.pk]
    assert TaskRecord.objects.get(pk=record.pk).status == FAILED


@pytest.mark.django_db(transaction=True)
def test_a_bug_in_a_chore_is_logged_and_the_next_recovery_runs(
    task_options: Any, caplog: pytest.LogCaptureFixture
) -> None:
    backend = task_options(max_attempts=1, heartbeat_interval=1, worker_timeout=5)
    now, _, maintenance, _ = rescuer(backend, started_at=0.0)
    now[0] = 60.0
    announced: list[list[int]] = []

    def buggy(written: list[Written]) -> None:
        announced.append([item.outcome.record.pk for item in written])
        if len(announced) == 1:
            raise RuntimeError("a bug after the first recovery")

    maintenance.on_written = buggy
    enqueue()
    (first,) = claim_all(backend.store, "gone")
    with caplog.at_level(logging.ERROR, logger="conveyor"):
        maintenance.run_once()  # raises inside; in the thread it would have ended it
    enqueue()
    (second,) = claim_all(backend.store, "gone-too")
    maintenance.run_once()
    assert announced == [[first.pk], [second.pk]]
    (logged,) = [
        r for r in caplog.records if r.getMessage() == "Maintenance failed, will try again"
    ]
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], RuntimeError)


@pytest.mark.django_db(transaction=True)
def test_an_outage_met_by_a_chore_holds_recovery_up_for_a_worker_timeout(
    task_options: Any,
) -> None:
    backend = task_options(max_attempts=1, heartbeat_interval=1, worker_timeout=5)
    now, health, maintenance, recovered = rescuer(backend, started_at=60.0)
    now[0] = 120.0
    enqueue()
    (record,) = claim_all(backend.store, "gone")

    def unreachable(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(unreachable):
        maintenance.run_once()
    assert health.quiet_for() == 0.0
    maintenance.run_once()  # back, but not for long enough to judge other workers
    assert TaskRecord.objects.get(pk=record.pk).status == RUNNING
    assert recovered == []
    now[0] += 5.0
    maintenance.run_once()
    assert [written.outcome.record.pk for written in recovered] == [record.pk]
    assert TaskRecord.objects.get(pk=record.pk).status == FAILED


@pytest.mark.django_db(transaction=True)
def test_a_worker_stopped_inside_its_claim_hides_no_lost_task_from_recovery(
    task_options: Any,
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: recovery waits for the claim, skips nothing")
    backend = task_options(max_attempts=1)
    register(backend, "frozen")  # alive: its heartbeat is fresh
    enqueue()
    (lost,) = claim_all(backend.store, "gone")  # RUNNING, its worker not registered
    enqueue()  # for the stopped claim to pick
    picked, release = threading.Event(), threading.Event()

    def stop_after_the_pick(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if "SKIP LOCKED" in sql:
            picked.set()
            release.wait(30)  # a frozen worker, its claim's transaction open
        return result

    def claim() -> None:
        try:
            with connection.execute_wrapper(stop_after_the_pick):
                claim_all(backend.store, "frozen")
        finally:
            connection.close()

    claimer = threading.Thread(target=claim)
    claimer.start()
    try:
        assert picked.wait(10)
        written = backend.store.recover_lost(recovered_by="rescuer")
    finally:
        release.set()
        claimer.join(10)
    assert [item.outcome.record.pk for item in written] == [lost.pk]
    assert TaskRecord.objects.get(pk=lost.pk).status == FAILED
