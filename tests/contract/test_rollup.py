"""Engine.activity() and Engine.roll_up(): the dashboard's reads and the per-minute rollup
that keeps them small, on every database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from conveyor.backend import DatabaseBackend
from conveyor.columns import WAIT_BUCKETS_MS
from conveyor.models import MinuteCount, RollupMark, TaskRecord
from conveyor.store import Activity, Engine
from tests.factories import ago
from tests.operations.helpers import fail_once, succeed_once

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
LAG = timedelta(minutes=1)


def within(activity: Activity, bound_ms: int) -> int:
    """How many tasks of the activity waited at most `bound_ms`."""
    index = WAIT_BUCKETS_MS.index(bound_ms)
    return sum(counts.within[index] for counts in activity.waits)


def finished_ago(store: Engine, minutes: float, *, failed: bool = False) -> TaskRecord:
    """A task that ran and finished `minutes` ago, after waiting 20 seconds."""
    row = fail_once(store) if failed else succeed_once(store)
    assert row.last_attempted_at is not None
    TaskRecord.objects.filter(pk=row.pk).update(
        finished_at=ago(minutes=minutes),
        available_after=row.last_attempted_at - timedelta(seconds=20),
    )
    return row


def totals(activity: Activity) -> dict[str, int]:
    counted: dict[str, int] = {}
    for _, status, n in activity.finished:
        counted[status] = counted.get(status, 0) + n
    return counted


def test_activity_counts_finished_tasks_per_bucket_with_their_waits_and_failures(
    backend: DatabaseBackend,
) -> None:
    store = backend.store
    done = succeed_once(store)
    failed = fail_once(store)
    old = succeed_once(store)
    TaskRecord.objects.filter(pk=old.pk).update(finished_at=ago(hours=2))
    assert done.last_attempted_at is not None
    TaskRecord.objects.filter(pk=done.pk).update(
        available_after=done.last_attempted_at - timedelta(seconds=25)
    )

    activity = store.activity(since=HOUR, bucket="minute", top=5)

    assert totals(activity) == {"FAILED": 1, "SUCCESSFUL": 1}
    for start, _, _ in activity.finished:
        assert (start.second, start.microsecond) == (0, 0)
        assert activity.now - timedelta(minutes=2) < start <= activity.now
    assert sum(counts.waited for counts in activity.waits) == 2
    assert (within(activity, 10_000), within(activity, 30_000)) == (1, 2)
    assert activity.failing == [(failed.task_path, 1)]
    day = store.activity(since=timedelta(days=1), bucket="hour", top=5)
    assert sum(n for _, _, n in day.finished) == 3
    assert {start.minute for start, _, _ in day.finished} == {0}
    with pytest.raises(ValueError, match="bucket"):
        store.activity(since=HOUR, bucket="week", top=1)


def test_roll_up_sums_whole_minutes_past_the_lag_and_the_dashboard_reads_them_once(
    backend: DatabaseBackend,
) -> None:
    store = backend.store
    failed = finished_ago(store, 10, failed=True)
    finished_ago(store, 20)
    finished_ago(store, 20.1)
    succeed_once(store)  # finished now: within the lag, left to the task rows
    before = store.activity(since=HOUR, bucket="minute", top=5)
    day_before = store.activity(since=timedelta(days=1), bucket="hour", top=5)

    assert store.roll_up(lag=LAG, keep=HOUR, limit=1000) == 59  # from the hour's first minute

    rolled = {(m.status, m.count, m.waited) for m in MinuteCount.objects.filter(span_minutes=1)}
    assert rolled <= {("FAILED", 1, 1), ("SUCCESSFUL", 2, 2), ("SUCCESSFUL", 1, 1)}
    assert sum(m.count for m in MinuteCount.objects.filter(span_minutes=1)) == 3
    assert store.roll_up(lag=LAG, keep=HOUR, limit=1000) in (0, 1)  # a minute may have passed
    after = store.activity(since=HOUR, bucket="minute", top=5)
    assert (after.finished, after.waits, after.failing) == (
        before.finished,
        before.waits,
        before.failing,
    )
    assert totals(after) == {"FAILED": 1, "SUCCESSFUL": 3}
    day = store.activity(since=timedelta(days=1), bucket="hour", top=5)  # with hour rows
    assert (day.finished, day.waits, day.failing) == (
        day_before.finished,
        day_before.waits,
        day_before.failing,
    )
    assert within(after, 10_000) == 1  # the task finished now waited milliseconds
    assert within(after, 30_000) == 4
    assert after.failing == [(failed.task_path, 1)]


def test_rolled_up_minutes_stay_counted_after_their_tasks_are_purged(
    backend: DatabaseBackend,
) -> None:
    store = backend.store
    finished_ago(store, 5)
    finished_ago(store, 6, failed=True)
    store.roll_up(lag=LAG, keep=HOUR, limit=1000)

    assert store.purge(finished=True, older_than=timedelta(0)) == 2

    activity = store.activity(since=timedelta(days=1), bucket="hour", top=5)
    assert totals(activity) == {"FAILED": 1, "SUCCESSFUL": 1}
    assert len(activity.failing) == 1


def test_a_minute_rolled_up_again_is_replaced_not_added_to(backend: DatabaseBackend) -> None:
    store = backend.store
    finished_ago(store, 5)
    store.roll_up(lag=LAG, keep=HOUR, limit=1000)
    (mark,) = RollupMark.objects.values_list("rolled_until", flat=True)
    RollupMark.objects.update(rolled_until=mark - timedelta(minutes=30))

    assert store.roll_up(lag=LAG, keep=HOUR, limit=1000) >= 30

    assert sum(m.count for m in MinuteCount.objects.filter(span_minutes=1)) == 1
    assert totals(store.activity(since=HOUR, bucket="minute", top=5)) == {"SUCCESSFUL": 1}


def test_roll_up_deletes_minutes_older_than_it_keeps(backend: DatabaseBackend) -> None:
    store = backend.store
    finished_ago(store, 5)
    minute = ago(hours=3).replace(second=0, microsecond=0)
    MinuteCount.objects.create(
        backend_name=store.backend_name,
        minute=minute,
        hour=minute.replace(minute=0),
        queue_name="default",
        task_path="tests.tasksapp.tasks.add",
        status="SUCCESSFUL",
        count=7,
    )

    store.roll_up(lag=LAG, keep=HOUR, limit=1000)

    assert [m.count for m in MinuteCount.objects.filter(span_minutes=1)] == [1]


def test_roll_up_passes_minutes_in_which_nothing_finished_in_one_step(
    backend: DatabaseBackend,
) -> None:
    """A new backend's mark starts as far back as the rollup keeps: the empty minutes before
    a finished task cost one step, not one per batch of minutes."""
    store = backend.store
    finished_ago(store, 150)
    finished_ago(store, 30)
    keep = timedelta(days=2)

    first = store.roll_up(lag=LAG, keep=keep, limit=60)  # two days, to an hour past the first
    (mark,) = RollupMark.objects.values_list("rolled_until", flat=True)
    assert timedelta(minutes=89) <= store.database_now() - mark <= timedelta(minutes=91)
    assert first >= 2 * 24 * 60 - 91
    assert sum(m.count for m in MinuteCount.objects.filter(span_minutes=1)) == 1

    # An hour with nothing, then the second task: in one step to the lag.
    assert 87 <= store.roll_up(lag=LAG, keep=keep, limit=60) <= 90
    assert sum(m.count for m in MinuteCount.objects.filter(span_minutes=1)) == 2
    assert store.roll_up(lag=LAG, keep=keep, limit=60) in (0, 1)  # a minute may have passed
    # Every complete hour has its row, summing its minutes.
    summed: dict[Any, int] = {}
    for minute in MinuteCount.objects.filter(span_minutes=1):
        summed[minute.hour] = summed.get(minute.hour, 0) + minute.count
    hours = {m.minute: m.count for m in MinuteCount.objects.filter(span_minutes=60)}
    assert hours == {hour: count for hour, count in summed.items() if hour in hours}
    assert sum(hours.values()) >= 1  # the task of 150 minutes ago is in a complete hour
    assert totals(store.activity(since=timedelta(days=1), bucket="hour", top=5)) == {
        "SUCCESSFUL": 2
    }
