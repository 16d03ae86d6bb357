"""Prometheus metrics: a real worker's --metrics-port and the Django view, read with
prometheus_client's own parser."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest
from django.test import RequestFactory
from prometheus_client.parser import text_string_to_metric_families

from conveyor import enqueue_many
from conveyor.models import TaskRecord
from tests.conftest import wait_until
from tests.tasksapp.tasks import fail, noop

pytestmark = pytest.mark.process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return None


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[name, tuple(sorted(labels.items()))]


def test_the_worker_serves_counters_histograms_and_gauges_after_a_drain(start_worker) -> None:
    enqueue_many(noop, [((), {})] * 5)
    fail.enqueue()
    port = free_port()
    worker = start_worker("--metrics-port", str(port), "-c", "2")
    wait_until(lambda: TaskRecord.objects.finished().count() == 6, what="the drain")

    def drained() -> dict[Any, float] | None:
        text = scrape(port)
        found = samples(text) if text else {}
        finished = [v for (name, _), v in found.items() if name == "conveyor_tasks_finished_total"]
        return found if sum(finished) == 6 else None

    found = wait_until(drained, what="the drain's six finishes in the metrics")
    assert worker.popen.poll() is None, worker.log()
    noop_path, fail_path = noop.module_path, fail.module_path
    labels = {"task": noop_path, "queue": "default"}
    assert value(found, "conveyor_tasks_started_total", **labels) == 5
    assert value(found, "conveyor_tasks_finished_total", status="SUCCESSFUL", **labels) == 5
    assert (
        value(
            found, "conveyor_tasks_finished_total", task=fail_path, queue="default", status="FAILED"
        )
        == 1
    )
    assert value(found, "conveyor_task_run_seconds_count", **labels) == 5
    assert value(found, "conveyor_task_wait_seconds_count", queue="default") == 6
    assert value(found, "conveyor_task_wait_seconds_bucket", queue="default", le="+Inf") == 6
    # Gauges, read from the database at the scrape: a drained queue, one live worker.
    assert ("conveyor_tasks_due", (("backend", "default"), ("queue", "default"))) not in found
    assert value(found, "conveyor_workers_alive", backend="default") == 1


@pytest.mark.django_db
def test_the_view_serves_the_enqueued_counter_and_the_gauges() -> None:
    from conveyor import metrics

    before = metrics.ENQUEUED.labels(noop.module_path, "default")._value.get()
    noop.enqueue()
    response = metrics.view(RequestFactory().get("/metrics"))
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())
    labels = {"task": noop.module_path, "queue": "default"}
    assert value(found, "conveyor_tasks_enqueued_total", **labels) == before + 1
    assert value(found, "conveyor_tasks_due", backend="default", queue="default") == 1
    assert value(found, "conveyor_tasks_running", backend="default", queue="default") == 0
    assert value(found, "conveyor_oldest_due_age_seconds", backend="default", queue="default") >= 0
    assert value(found, "conveyor_workers_alive", backend="default") == 0
