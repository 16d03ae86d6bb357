"""Lock conflicts are retried by the store, never surfaced as a task failure."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import OperationalError, connection, connections, transaction

from conveyor.backend import DatabaseBackend
from conveyor.models import TaskRecord
from conveyor.store.portable import PortableEngine
from tests.factories import enqueue

pytestmark = pytest.mark.django_db(transaction=True)


def lock_in_order(first: int, second: int, meet: threading.Barrier) -> None:
    with transaction.atomic():
        TaskRecord.objects.select_for_update().get(pk=first)
        meet.wait()
        TaskRecord.objects.select_for_update().get(pk=second)
        # Which of the two orders wrote last (a priority, not the id: ids outgrow a smallint).
        order = 1 if first < second else 2
        TaskRecord.objects.filter(pk__in=[first, second]).update(priority=order)


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="SQLite has no row locks to deadlock")
def test_a_deadlock_victim_is_retried_until_it_succeeds(backend: DatabaseBackend) -> None:
    a, b = enqueue().pk, enqueue().pk
    meet = threading.Barrier(2, timeout=30)
    attempts: list[int] = []
    failures: list[BaseException] = []

    def victim_candidate(first: int, second: int) -> None:
        tries = 0

        def operation() -> None:
            nonlocal tries
            tries += 1
            attempts.append(tries)
            # Only a first try meets the other thread; a retry runs alone and succeeds.
            lock_in_order(first, second, meet if tries == 1 else threading.Barrier(1))

        try:
            portable(backend).retrying(operation)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=victim_candidate, args=(a, b)),
        threading.Thread(target=victim_candidate, args=(b, a)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    # Both operations completed, and the database picked a victim that was retried.
    assert len(attempts) == 3
    assert set(TaskRecord.objects.values_list("priority", flat=True)) in ({1}, {2})


@pytest.mark.parametrize(
    ("vendor", "error", "transient"),
    [
        ("mysql", OperationalError(1213, "Deadlock found when trying to get lock"), True),
        ("mysql", OperationalError(1205, "Lock wait timeout exceeded"), True),
        ("mysql", OperationalError(2006, "MySQL server has gone away"), False),
        ("sqlite", OperationalError("database is locked"), True),
        ("sqlite", OperationalError("no such table: conveyor_task"), False),
    ],
)
def test_which_errors_are_lock_conflicts(
    backend: DatabaseBackend, vendor: str, error: Any, transient: bool
) -> None:
    if connection.vendor != vendor:
        pytest.skip(f"classifies {vendor} errors; this pass runs {connection.vendor}")
    assert portable(backend).is_transient(error) is transient


def portable(backend: DatabaseBackend) -> PortableEngine:
    """The engine behind the interface: lock-conflict handling is not part of the Engine."""
    assert isinstance(backend.store, PortableEngine)
    return backend.store
