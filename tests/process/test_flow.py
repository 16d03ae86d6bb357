"""Flow control across real worker processes: limits hold globally, slots of dead workers
come back, and other tasks keep flowing."""

from __future__ import annotations

import math
import signal
from collections import Counter
from typing import Any

import pytest

from conveyor.compat import TaskResultStatus
from conveyor.models import Attempt, TaskRecord, WorkerRecord
from tests.conftest import wait_until
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import call_partner, noop, rate_limited

pytestmark = pytest.mark.process

SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAST = {"heartbeat_interval": 0.5, "worker_timeout": 2, "backoff_factor": 0}


def spans(prefix: str) -> list[tuple[float, float]]:
    """(start, end) of each recorded run of call_partner whose label starts with prefix."""
    found = []
    for label in Execution.objects.filter(label__startswith=prefix).values_list("label", flat=True):
        _, start, end = label.split("|")
        found.append((float(start), float(end)))
    return found


def most_at_once(runs: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in runs] + [(e, -1) for _, e in runs])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def all_finished() -> bool:
    return not TaskRecord.objects.exclude(status__in=[SUCCESSFUL, "FAILED"]).exists()


def test_a_concurrency_limit_holds_across_workers_while_other_tasks_flow(
    start_worker: Any,
) -> None:
    limited = [call_partner.enqueue(1, label=f"a{n}", sleep=0.3) for n in range(8)]
    others = [noop.enqueue() for _ in range(20)]
    for _ in range(4):
        start_worker("--concurrency", "8", "--delay-max", "200")
    wait_until(all_finished, timeout=60, what="every task to finish")
    assert most_at_once(spans("a")) == 2  # never more than the limit, and the limit is used
    assert len(spans("a")) == len(limited)
    # The limited tasks blocked nobody: every other task ended before the last limited one
    # started.
    last_limited_start = max(start for start, _ in spans("a"))
    ends = TaskRecord.objects.filter(pk__in=[r.id for r in others]).values_list(
        "finished_at", flat=True
    )
    assert max(end.timestamp() for end in ends if end is not None) < last_limited_start


def test_a_rate_limit_holds_across_workers(start_worker: Any) -> None:
    results = [rate_limited.enqueue() for _ in range(12)]
    for _ in range(2):
        start_worker("--concurrency", "4", "--delay-max", "200")
    wait_until(all_finished, timeout=60, what="every task to finish")
    # Counted where the limit counts them: by claim time on the database clock, in the
    # windows of one second the 3/s limit is counted in.
    starts = Attempt.objects.filter(task_id__in=[int(r.id) for r in results]).values_list(
        "started_at", flat=True
    )
    per_second = Counter(math.floor(start.timestamp()) for start in starts)
    assert sum(per_second.values()) == 12
    assert max(per_second.values()) == 3
    assert len(per_second) >= 4


def test_a_killed_worker_s_slot_comes_back_through_recovery(start_worker: Any) -> None:
    held = [call_partner.enqueue(1, label="held", sleep=60) for _ in range(2)]
    waiting = call_partner.enqueue(1, label="after", sleep=0)
    victim = start_worker("--concurrency", "4", options=FAST)
    wait_until(
        lambda: (
            TaskRecord.objects.filter(pk__in=[r.id for r in held], status="RUNNING").count() == 2
        ),
        what="both slots to be taken",
    )
    victim.signal(signal.SIGKILL)
    victim.wait()
    start_worker("--concurrency", "4", options=FAST)
    wait_until(lambda: refreshed(waiting).status == SUCCESSFUL, timeout=60, what="the waiter")
    assert WorkerRecord.objects.exclude(pid=victim.pid).exists()


def refreshed(result: Any) -> Any:
    result.refresh()
    return result
