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


def test_a_rate_limit_holds_across_workers_for_a_minute(start_worker: Any) -> None:
    # 3 per second: 180 tasks take a minute, whatever the four workers could do.
    results = [rate_limited.enqueue() for _ in range(180)]
    workers = [start_worker("--concurrency", "8", "--delay-max", "200") for _ in range(4)]
    wait_until(all_finished, timeout=120, what="every task to finish")
    # Every task ran, and no worker died on the way (a dead worker's claimed tasks would be
    # recovered as failed, their starts never counted).
    assert TaskRecord.objects.filter(status=SUCCESSFUL).count() == 180
    assert [worker.log() for worker in workers if not worker.alive()] == []
    # Counted where the limit counts them: by claim time on the database clock, in the
    # windows of one second the 3/s limit is counted in.
    starts = Attempt.objects.filter(task_id__in=[int(r.id) for r in results]).values_list(
        "started_at", flat=True
    )
    per_second = Counter(math.floor(start.timestamp()) for start in starts)
    assert sum(per_second.values()) == 180
    assert max(per_second.values()) == 3
    assert len(per_second) >= 60


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


ENQUEUE_SAME = """
import threading
from tests.tasksapp.tasks import sync_account
ids = []
def enqueue():
    ids.append(sync_account.enqueue(77).id)
threads = [threading.Thread(target=enqueue) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("ids:", " ".join(ids))
"""


def test_concurrent_enqueues_from_several_processes_store_one_unique_task(
    worker_env: Any, transactional_db: None
) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    command = [sys.executable, "-m", "django", "shell", "--settings=tests.settings", "-c"]
    enqueuers = [
        subprocess.Popen(
            [*command, ENQUEUE_SAME],
            env=worker_env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120) for process in enqueuers]
    assert [process.returncode for process in enqueuers] == [0] * 4, outputs
    lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith("ids:")]
    assert len(lines) == 4, outputs
    ids = {task_id for line in lines for task_id in line.split()[1:]}
    assert sum(len(line.split()) - 1 for line in lines) == 32
    assert len(ids) == 1  # 32 enqueues, one task
    assert TaskRecord.objects.count() == 1
