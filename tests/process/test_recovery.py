"""Workers that die, are stopped, or freeze: no task is lost, none stays RUNNING."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from conveyor.compat import TaskResultStatus
from conveyor.exceptions import WorkerInterrupted, WorkerLost
from conveyor.models import Attempt, TaskRecord, WorkerRecord
from tests.conftest import wait_until
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import slow_first

pytestmark = pytest.mark.process

HEARTBEAT, TIMEOUT = 0.5, 2.0
FAST = {"heartbeat_interval": HEARTBEAT, "worker_timeout": TIMEOUT, "backoff_factor": 0}
LOST = f"{WorkerLost.__module__}.WorkerLost"
INTERRUPTED = f"{WorkerInterrupted.__module__}.WorkerInterrupted"


def started(result_id: str, attempt: int = 1) -> bool:
    return Execution.objects.filter(result_id=result_id, attempt=attempt, label="").exists()


def history(result_id: str) -> list[tuple[str, str]]:
    attempts = Attempt.objects.filter(task_id=int(result_id)).select_related("error").order_by("id")
    return [
        (a.status, a.error.exception_class_path if hasattr(a, "error") else "") for a in attempts
    ]


@pytest.mark.parametrize(("max_attempts", "final"), [(2, "SUCCESSFUL"), (1, "FAILED")])
def test_a_killed_worker_task_is_taken_back_by_another(
    start_worker: Any, max_attempts: int, final: str
) -> None:
    options = {**FAST, "max_attempts": max_attempts}
    result = slow_first.enqueue(60)
    victim = start_worker(options=options)
    wait_until(lambda: started(result.id), what="the task to start")
    victim.signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()

    rescuer = start_worker(options=options)
    wait_until(lambda: history(result.id), timeout=30, what="recovery")
    recovered_after = time.monotonic() - killed_at
    # Within the timeout plus a heartbeat, and a generous margin for a busy machine.
    assert recovered_after < TIMEOUT + HEARTBEAT + 8, recovered_after
    wait_until(
        lambda: TaskRecord.objects.get(pk=result.id).status == final, what=f"the task to be {final}"
    )
    expected = [("FAILED", LOST)] + ([("SUCCESSFUL", "")] if max_attempts == 2 else [])
    assert history(result.id) == expected
    result.refresh()
    assert "stopped sending heartbeats" in result.errors[0].traceback
    assert rescuer.alive()
    assert not WorkerRecord.objects.exclude(pid=rescuer.pid).exists()


def test_sigterm_lets_the_running_task_finish(start_worker: Any) -> None:
    result = slow_first.enqueue(2)
    worker = start_worker(options=FAST)
    wait_until(lambda: started(result.id), what="the task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.log()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert history(result.id) == [("SUCCESSFUL", "")]
    assert not WorkerRecord.objects.exists()


def test_a_stopping_worker_claims_nothing_more(start_worker: Any) -> None:
    first, second = slow_first.enqueue(2), slow_first.enqueue(2)
    worker = start_worker("--concurrency", "1", options=FAST)  # the second waits for a slot
    wait_until(lambda: started(first.id), what="the first task to start")
    worker.signal(signal.SIGINT)
    assert worker.wait(30) == 0, worker.log()
    assert TaskRecord.objects.get(pk=second.id).status == TaskResultStatus.READY
    assert TaskRecord.objects.get(pk=first.id).status == TaskResultStatus.SUCCESSFUL


@pytest.mark.parametrize(("max_attempts", "final"), [(2, "READY"), (1, "FAILED")])
def test_a_second_sigterm_interrupts_at_once(
    start_worker: Any, max_attempts: int, final: str
) -> None:
    result = slow_first.enqueue(60)
    worker = start_worker(
        options={**FAST, "max_attempts": max_attempts, "backoff_factor": 60},
        env={"CONVEYOR_TEST_LOG_LEVEL": "INFO"},
    )
    wait_until(lambda: started(result.id), what="the task to start")
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "stopping: finishing running tasks" in worker.log(), what="the first stop")
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) != 0
    assert TaskRecord.objects.get(pk=result.id).status == final
    assert history(result.id) == [("FAILED", INTERRUPTED)]
    assert not WorkerRecord.objects.exists() or WorkerRecord.objects.get().pid == worker.pid


def test_shutdown_timeout_interrupts_tasks_that_run_too_long(start_worker: Any) -> None:
    result = slow_first.enqueue(60)
    worker = start_worker("--shutdown-timeout", "1", options={**FAST, "max_attempts": 2})
    wait_until(lambda: started(result.id), what="the task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) != 0
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.status, row.worker_id) == (TaskResultStatus.READY, "")
    assert history(result.id) == [("FAILED", INTERRUPTED)]


def test_a_frozen_worker_cannot_overwrite_what_recovery_decided(start_worker: Any) -> None:
    result = slow_first.enqueue(4)
    zombie = start_worker(options={**FAST, "max_attempts": 2})
    wait_until(lambda: started(result.id), what="the task to start")
    zombie.signal(signal.SIGSTOP)
    rescuer = start_worker(options={**FAST, "max_attempts": 2})
    wait_until(
        lambda: TaskRecord.objects.get(pk=result.id).status == TaskResultStatus.SUCCESSFUL,
        timeout=30,
        what="the retry to succeed on the rescuer",
    )
    zombie.signal(signal.SIGCONT)
    # The zombie's task thread wakes up and tries to record attempt 1 as successful.
    wait_until(lambda: "no longer held" in zombie.log(), timeout=30, what="the fenced write")
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == TaskResultStatus.SUCCESSFUL
    assert row.return_value == 2  # the rescuer's attempt, not the zombie's
    assert history(result.id) == [("FAILED", LOST), ("SUCCESSFUL", "")]
    assert zombie.alive()
    assert rescuer.alive()
    # The zombie noticed it had been declared dead and registered again.
    wait_until(lambda: WorkerRecord.objects.count() == 2, timeout=10, what="re-registration")


def test_restarting_a_killed_worker_under_its_id_takes_its_tasks_back(start_worker: Any) -> None:
    result = slow_first.enqueue(60)
    first = start_worker("--id", "fixed", options={**FAST, "max_attempts": 2})
    wait_until(lambda: started(result.id), what="the task to start")
    first.signal(signal.SIGKILL)
    first.wait()
    # Restarted at once, well within worker_timeout: the old owner is a dead local process.
    second = start_worker("--id", "fixed", options={**FAST, "max_attempts": 2})
    wait_until(
        lambda: TaskRecord.objects.get(pk=result.id).status == TaskResultStatus.SUCCESSFUL,
        timeout=30,
        what="the task to be retried by the restarted worker",
    )
    assert history(result.id) == [("FAILED", LOST), ("SUCCESSFUL", "")]
    assert second.alive()
    assert WorkerRecord.objects.get().pid == second.pid


def test_a_live_worker_id_cannot_be_used_twice(start_worker: Any) -> None:
    first = start_worker("--id", "taken", options=FAST)
    wait_until(WorkerRecord.objects.exists, what="the first worker to register")
    second = start_worker("--id", "taken", options=FAST)
    assert second.wait(30) == 1
    errors = [line for line in second.log().splitlines() if line.strip()]
    assert errors[-1].startswith("CommandError: Worker id 'taken' is in use by a live worker")
    assert "Traceback" not in second.log()
    assert first.alive()
