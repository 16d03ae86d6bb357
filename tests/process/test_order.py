"""A worker runs due tasks in claim order and deferred tasks no earlier than run_after."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conveyor.columns import HOLD_TIME
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord, WorkerRecord
from tests.conftest import wait_until
from tests.factories import ago
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import fail_until, record

pytestmark = pytest.mark.process


def test_higher_priority_runs_sooner_among_due_tasks(start_worker: Any) -> None:
    labels = {"low": -10, "mid": 0, "high": 10}
    for label, priority in labels.items():
        record.using(priority=priority).enqueue(label)
    older = record.using(priority=-100).enqueue("older")
    TaskRecord.objects.filter(pk=older.id).update(available_after=ago(minutes=2))
    same = [record.using(priority=5).enqueue(f"same-{n}") for n in range(3)]
    for n, result in enumerate(same):  # equal priority: the earlier due runs first
        TaskRecord.objects.filter(pk=result.id).update(available_after=ago(minutes=n))
    worker = start_worker("--oneshot", "--concurrency", "1")  # one slot: one task at a time
    assert worker.wait() == 0, worker.log()
    ran = list(
        Execution.objects.exclude(label__startswith="signal:").values_list("label", flat=True)
    )
    assert ran == ["high", "same-2", "same-1", "same-0", "mid", "low", "older"]


def test_priority_orders_due_retries_and_deferred_tasks_alike(start_worker: Any) -> None:
    plain = [record.using(priority=p).enqueue(f"plain{p}") for p in (0, 10)]
    failing = fail_until.using(priority=20).enqueue(succeed_on=2)
    # A deferred task whose time has come, not yet staged by any claim.
    deferred = record.using(priority=30, run_after=timezone.now() + timedelta(hours=1))
    deferred_result = deferred.enqueue("deferred")
    TaskRecord.objects.filter(pk=deferred_result.id).update(available_after=ago(seconds=1))
    assert TaskRecord.objects.get(pk=deferred_result.id).hold == HOLD_TIME
    worker = start_worker(
        "--oneshot", "--concurrency", "1", options={"max_attempts": 2, "backoff_factor": 0}
    )
    assert worker.wait() == 0, worker.log()
    ran = list(
        Execution.objects.exclude(label__startswith="signal:")
        .order_by("pk")
        .values_list("label", flat=True)
    )
    # The deferred task, staged by the claim, runs first by its priority; the failed task is
    # retried as soon as its outcome is written (the worker may have claimed the next task
    # meanwhile), and lower priorities come last in their own order.
    assert ran[:2] == ["deferred", ""]
    assert ran.count("") == 2
    assert [label for label in ran if label.startswith("plain")] == ["plain10", "plain0"]
    assert refreshed(failing).attempts == 2
    assert all(refreshed(r).status == TaskResultStatus.SUCCESSFUL for r in plain)


def refreshed(result: Any) -> Any:
    result.refresh()
    return result


def test_deferred_task_waits_for_run_after(start_worker: Any) -> None:
    deferred = record.using(run_after=timezone.now() + timedelta(minutes=5)).enqueue("later")
    now = record.enqueue("now")
    worker = start_worker("--oneshot")
    assert worker.wait() == 0, worker.log()
    now.refresh()
    deferred.refresh()
    assert now.status == TaskResultStatus.SUCCESSFUL
    assert deferred.status == TaskResultStatus.READY  # not due yet: a oneshot worker leaves it

    start_worker("--delay-max", "500")
    wait_until(WorkerRecord.objects.exists, what="the worker to start")
    run_after = timezone.now() + timedelta(seconds=2)
    record.using(run_after=run_after).enqueue("deferred")
    wait_until(lambda: Execution.objects.filter(label="deferred").exists(), timeout=30)
    started = Execution.objects.get(label="deferred").created_at
    assert started >= run_after
