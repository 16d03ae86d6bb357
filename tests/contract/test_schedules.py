"""The store's periodic-task operations, on every database: a tick is enqueued exactly once,
whoever races for it, and its markers are pruned on their own."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import ScheduleTick, TaskRecord
from conveyor.store import Engine, LastTick, NewTask
from conveyor.store.portable import PortableEngine
from tests.tasksapp.tasks import add

pytestmark = pytest.mark.django_db

WINDOW = timedelta(hours=1)


def scheduled(backend: DatabaseBackend) -> NewTask:
    return backend.new_task(add, (1, 2), {})


def tick_of(backend: DatabaseBackend, **delta: float) -> datetime:
    now = backend.store.database_now().replace(microsecond=0)
    return now - timedelta(**delta)


def test_enqueue_tick_stores_the_task_with_its_schedule_and_tick_once(
    backend: DatabaseBackend,
) -> None:
    tick = tick_of(backend, seconds=5)
    pk = backend.store.enqueue_tick(
        scheduled(backend), schedule_name="sync", tick=tick, window=WINDOW
    )
    again = backend.store.enqueue_tick(
        scheduled(backend), schedule_name="sync", tick=tick, window=WINDOW
    )
    assert pk is not None
    assert again is None
    row = TaskRecord.objects.get()
    assert (row.pk, row.schedule_name, row.schedule_tick) == (pk, "sync", tick)
    assert (row.status, row.task_path, row.arguments) == (
        TaskResultStatus.READY,
        add.module_path,
        {"args": [1, 2], "kwargs": {}},
    )
    assert list(ScheduleTick.objects.values_list("schedule_name", "tick", "task_id")) == [
        ("sync", tick, pk)
    ]


def test_enqueue_tick_refuses_a_tick_older_than_the_window(backend: DatabaseBackend) -> None:
    old = tick_of(backend, hours=2)
    assert (
        backend.store.enqueue_tick(scheduled(backend), schedule_name="s", tick=old, window=WINDOW)
        is None
    )
    assert not TaskRecord.objects.exists()


def test_enqueue_tick_prunes_markers_older_than_the_window(backend: DatabaseBackend) -> None:
    store = backend.store
    first = tick_of(backend, minutes=50)
    store.enqueue_tick(scheduled(backend), schedule_name="s", tick=first, window=WINDOW)
    store.enqueue_tick(scheduled(backend), schedule_name="other", tick=first, window=WINDOW)
    # One window after `first`, its marker goes; the other schedule's stays.
    store.enqueue_tick(
        scheduled(backend),
        schedule_name="s",
        tick=first + WINDOW + timedelta(seconds=1),
        window=WINDOW,
    )
    ticks = sorted(ScheduleTick.objects.values_list("schedule_name", "tick"))
    assert ticks == [("other", first), ("s", first + WINDOW + timedelta(seconds=1))]


@pytest.mark.django_db(transaction=True)
def test_racing_workers_enqueue_a_tick_once(backend: DatabaseBackend) -> None:
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] == ":memory:":
        pytest.skip("threads share no in-memory database")  # pragma: no cover
    tick = tick_of(backend, seconds=1)
    barrier = threading.Barrier(4)
    results: list[int | None] = []

    def race() -> None:
        try:
            engine = another_engine(backend)
            barrier.wait()
            results.append(
                engine.enqueue_tick(
                    scheduled(backend), schedule_name="race", tick=tick, window=WINDOW
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([pk for pk in results if pk is not None]) == 1
    assert TaskRecord.objects.filter(schedule_name="race").count() == 1


def test_run_schedule_enqueues_outside_the_ticks(backend: DatabaseBackend) -> None:
    pk = backend.store.run_schedule(scheduled(backend), schedule_name="sync")
    row = TaskRecord.objects.get(pk=pk)
    assert (row.schedule_name, row.schedule_tick, row.status) == ("sync", None, "READY")
    assert not ScheduleTick.objects.exists()


def test_last_ticks_report_each_schedules_newest_tick_and_its_status(
    backend: DatabaseBackend,
) -> None:
    store = backend.store
    old, new = tick_of(backend, minutes=2), tick_of(backend, minutes=1)
    store.enqueue_tick(scheduled(backend), schedule_name="a", tick=old, window=WINDOW)
    newest = store.enqueue_tick(scheduled(backend), schedule_name="a", tick=new, window=WINDOW)
    gone = store.enqueue_tick(scheduled(backend), schedule_name="b", tick=old, window=WINDOW)
    assert gone is not None
    TaskRecord.objects.filter(pk=gone).delete()
    assert store.last_ticks() == [
        LastTick("a", new, newest, "READY"),
        LastTick("b", old, gone, None),
    ]


def another_engine(backend: DatabaseBackend) -> Engine:
    """An engine of the backend as another process (or thread) has it."""
    engine = type(backend.store)
    assert issubclass(engine, PortableEngine)
    return engine(backend_name=backend.alias, options=backend.config, using="default")
