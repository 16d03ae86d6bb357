"""Small helpers of the operations tests: tasks brought into a state through the store."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from django.db import connections

from conveyor.compat import TaskError, TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store import Engine, Outcome
from tests.conftest import wait_until
from tests.factories import claim_all, enqueue


def boom() -> TaskError:
    return TaskError(
        exception_class_path="builtins.ValueError",
        traceback='Traceback (most recent call last):\n  File "x.py"\nValueError: boom\n',
    )


def finish_failed(store: Engine, records: Sequence[TaskRecord], worker_id: str = "") -> None:
    """Record a ValueError for claimed records (worker id: the one that claimed them)."""
    for record in records:
        outcome = Outcome(record, TaskResultStatus.FAILED, error=boom())
        store.finish(worker_id=worker_id or record.worker_id, outcomes=[outcome])


def fail_once(store: Engine, **fields: Any) -> TaskRecord:
    """A task that ran once on worker 'w1' and failed for good (max_attempts is 1)."""
    row = enqueue(**fields)
    (claimed,) = claim_all(store, "w1")
    assert claimed.pk == row.pk
    finish_failed(store, [claimed])
    return TaskRecord.objects.get(pk=row.pk)


def succeed_once(store: Engine, value: Any = 3) -> TaskRecord:
    row = enqueue()
    (claimed,) = claim_all(store, "w1")
    store.finish(
        worker_id="w1", outcomes=[Outcome(claimed, TaskResultStatus.SUCCESSFUL, return_value=value)]
    )
    return TaskRecord.objects.get(pk=row.pk)


def claim_due(store: Engine, worker_id: str) -> list[TaskRecord]:
    """Claim the one task, waiting out a retry that is due this very millisecond (SQLite
    compares times as text, and a retry's time may carry more digits than its clock)."""
    claimed: list[TaskRecord] = wait_until(lambda: claim_all(store, worker_id), timeout=5)
    assert len(claimed) == 1
    return claimed


def race(workers: int, target: Any) -> list[Any]:
    """Run target(i) in `workers` threads released together; return their results."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target(index)
        except BaseException as exc:
            errors.append(exc)
            raise
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results
