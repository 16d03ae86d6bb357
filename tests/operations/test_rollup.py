"""The worker's rollup on every database: one worker at a time, under its lease, catching
up in batches and then keeping up."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from conveyor.backend import DatabaseBackend
from conveyor.models import Lease, MinuteCount, RollupMark, TaskRecord
from conveyor.worker.rollup import Rollup
from tests.factories import ago
from tests.operations.helpers import succeed_once

pytestmark = pytest.mark.django_db


def test_the_lease_holder_rolls_up_and_another_worker_skips(backend: DatabaseBackend) -> None:
    store = backend.store
    row = succeed_once(store)
    TaskRecord.objects.filter(pk=row.pk).update(finished_at=ago(minutes=5))
    first = Rollup(store, "w1", stopping=threading.Event())
    second = Rollup(store, "w2", stopping=threading.Event())
    first.budget = timedelta(minutes=2)  # a catch-up of two days at once

    rolled = first.run_if_due()

    assert rolled is not None
    assert rolled >= 60 * 24  # from ROLLUP_KEEP back, in batches
    assert Lease.objects.get(name="rollup:default").holder == "w1"
    assert [m.count for m in MinuteCount.objects.filter(span_minutes=1)] == [1]
    assert second.run() == (0, True)  # the lease is w1's
    assert first.run_if_due() is None  # not due again before its interval


def test_a_run_out_of_budget_leaves_the_backlog_to_the_next_one_at_once(
    backend: DatabaseBackend,
) -> None:
    worker = Rollup(backend.store, "w1", stopping=threading.Event())
    worker.budget = timedelta(0)

    assert worker.run_if_due() == 0
    assert worker._next_run <= time.monotonic()  # due again at once
    worker.budget = timedelta(seconds=60)
    worker.run_if_due()
    (mark,) = RollupMark.objects.values_list("rolled_until", flat=True)
    assert mark >= ago(minutes=3)
    assert worker._next_run > time.monotonic()  # caught up: next interval
