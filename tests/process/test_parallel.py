"""Several worker processes on one database: every task runs exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db.models import Count

from conveyor import enqueue_many
from conveyor.compat import TaskResultStatus
from conveyor.models import Attempt, TaskRecord
from tests.conftest import wait_until
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import record

pytestmark = pytest.mark.process

TASKS = 2000


def test_workers_in_parallel_run_each_task_exactly_once(start_worker: Any) -> None:
    results = enqueue_many(record, [((), {}) for _ in range(TASKS)])
    workers = [start_worker("--concurrency", "8", "--delay-max", "200") for _ in range(4)]
    wait_until(
        lambda: not TaskRecord.objects.exclude(status=TaskResultStatus.SUCCESSFUL).exists(),
        timeout=240,
        interval=0.5,
        what=f"{TASKS} tasks to finish",
    )
    for worker in workers:
        assert worker.alive(), worker.log()
    runs = Counter(Execution.objects.filter(label="").values_list("result_id", flat=True))
    assert set(runs) == {r.id for r in results}
    assert set(runs.values()) == {1}, "a task ran more than once"
    assert Attempt.objects.count() == TASKS
    per_task = TaskRecord.objects.annotate(n=Count("attempts")).values_list("n", flat=True)
    assert set(per_task) == {1}
    # The work was shared: every process took part.
    pids = set(Execution.objects.values_list("pid", flat=True))
    assert len(pids) == len(workers)
