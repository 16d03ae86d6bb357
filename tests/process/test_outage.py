"""Database outages: workers keep running, retry, and lose no task."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.db.models import Count

from conveyor import enqueue_many
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from tests.conftest import wait_until
from tests.faults import TcpProxy
from tests.tasksapp.models import Execution
from tests.tasksapp.tasks import add, record, sleep

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(
        "connection.vendor == 'sqlite'",
        reason="SQLite is a file, not a server: there is no connection to cut",
    ),
]

TASKS = 3000


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    settings = connection.settings_dict
    proxy = TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"]))
    yield proxy
    proxy.close()


def port_option(proxy: TcpProxy) -> dict[str, str]:
    key = "CONVEYOR_PG_PORT" if connection.vendor == "postgresql" else "CONVEYOR_MYSQL_PORT"
    return {key: str(proxy.port)}


def finished() -> int:
    return TaskRecord.objects.filter(
        status__in=(TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    ).count()


def test_workers_ride_out_connection_cuts_and_lose_nothing(
    start_worker: Any, proxy: TcpProxy
) -> None:
    results = enqueue_many(record, [((), {}) for _ in range(TASKS)])
    options = {
        "max_attempts": 10,
        "backoff_factor": 1,
        "heartbeat_interval": 1,
        "worker_timeout": 5,
    }
    workers = [
        start_worker("--concurrency", "2", options=options, env=port_option(proxy))
        for _ in range(3)
    ]
    rng = random.Random(7)
    for cut in range(3):
        target = TASKS * (cut + 1) // 5
        wait_until(lambda: finished() >= target, timeout=120, what="progress")  # noqa: B023
        proxy.sever()
        time.sleep(rng.uniform(1.0, 3.0))
        proxy.restore()
    wait_until(lambda: finished() == TASKS, timeout=240, interval=0.5, what="every task to finish")

    assert all(worker.alive() for worker in workers), [w.log()[-2000:] for w in workers]
    statuses = dict(TaskRecord.objects.values_list("status").annotate(n=Count("id")))
    assert statuses == {TaskResultStatus.SUCCESSFUL: TASKS}
    assert {str(pk) for pk in TaskRecord.objects.values_list("pk", flat=True)} == {
        r.id for r in results
    }
    # A body may have run and failed against the cut database, then run again: never more
    # often than its attempts, and exactly once successfully.
    runs = Execution.objects.filter(label="").values("result_id").annotate(n=Count("id"))
    attempts = dict(TaskRecord.objects.values_list("pk", "attempt_count"))
    for row in runs:
        assert row["n"] <= attempts[int(row["result_id"])]
    for worker in workers:
        log = worker.log()
        assert log.count("Database unavailable") >= 1, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert log.count("Database unavailable") == log.count("Database is back"), log[-3000:]


def test_enqueue_during_an_outage_raises_to_the_caller(
    transactional_db: None, proxy: TcpProxy
) -> None:
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = str(proxy.port)
    try:
        proxy.sever()
        with pytest.raises(OperationalError):
            add.enqueue(1, 2)
        proxy.restore()
        connection.close()
        result = add.enqueue(1, 2)
    finally:
        connection.close()
        connection.settings_dict.update(original)
    assert TaskRecord.objects.filter(pk=result.id).exists()
    assert TaskRecord.objects.count() == 1


def test_an_outage_longer_than_worker_timeout_takes_nothing_from_live_workers(
    start_worker: Any, proxy: TcpProxy
) -> None:
    results = [sleep.enqueue(8) for _ in range(4)]
    options = {"heartbeat_interval": 1, "worker_timeout": 4, "max_attempts": 3}
    workers = [
        start_worker("--concurrency", "2", options=options, env=port_option(proxy))
        for _ in range(2)
    ]
    # Started, not only claimed: the test app's task_started receiver writes a row, and a
    # receiver that meets the cut database fails its task.
    wait_until(
        lambda: Execution.objects.filter(label__startswith="signal:started").count() == 4,
        what="all four tasks to start",
    )
    proxy.sever()
    time.sleep(6)  # longer than worker_timeout: every heartbeat looks old afterwards
    proxy.restore()
    wait_until(lambda: finished() == 4, timeout=60, what="the tasks to finish")
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.attempts == 1, result.errors
    assert all(worker.alive() for worker in workers)
    for worker in workers:
        assert "no longer held" not in worker.log()


def test_a_worker_started_during_an_outage_waits_for_the_database(
    start_worker: Any, proxy: TcpProxy
) -> None:
    result = add.enqueue(2, 3)
    proxy.sever()
    worker = start_worker("--delay-max", "200", env=port_option(proxy))
    wait_until(lambda: "Database unavailable" in worker.log(), what="the outage to be logged")
    time.sleep(2)
    assert worker.alive(), worker.log()
    proxy.restore()
    wait_until(
        lambda: TaskRecord.objects.get(pk=result.id).status == TaskResultStatus.SUCCESSFUL,
        timeout=30,
        what="the task to run once the database is back",
    )
    assert worker.log().count("Database unavailable") == 1, worker.log()
    assert "Traceback" not in worker.log()
