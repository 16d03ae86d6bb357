"""A worker runs due tasks in claim order and deferred tasks no earlier than run_after."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.tasks import TaskResultStatus
from django.utils import timezone

from conveyor.models import TaskRecord, WorkerRecord
from tests.conftest import wait_until
from tests.factories import ago
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import record

pytestmark = pytest.mark.process


def test_priority_orders_tasks_available_at_the_same_moment(start_worker: Any) -> None:
    same_moment = ago(minutes=1)
    labels = {"p0": 0, "p50": 50, "p-20": -20, "p100": 100, "p10": 10}
    for label, priority in labels.items():
        result = record.using(priority=priority).enqueue(label)
        TaskRecord.objects.filter(pk=result.id).update(available_after=same_moment)
    earlier = record.using(priority=-100).enqueue("earlier")
    TaskRecord.objects.filter(pk=earlier.id).update(available_after=ago(minutes=2))
    worker = start_worker("--oneshot")
    assert worker.wait() == 0, worker.log()
    ran = list(
        Execution.objects.exclude(label__startswith="signal:").values_list("label", flat=True)
    )
    assert ran == ["earlier", "p100", "p50", "p10", "p0", "p-20"]


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
