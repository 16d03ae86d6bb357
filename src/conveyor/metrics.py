"""Prometheus metrics (needs `django-conveyor[prometheus]`): counters and histograms kept by
the processes that enqueue and run tasks, and gauges read from the database at each scrape.

Served by the worker (`conveyor_worker --metrics-port`) and by `view`, which a project can
mount in its URLconf. Imported only through conveyor.observe, when prometheus_client is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

from django.db import connections
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.compat import TaskResultStatus, task_backends
from conveyor.models import TaskRecord
from conveyor.results import AnyResult
from conveyor.store import Written

# Seconds: from a few milliseconds of a busy queue to an hour of a backlog.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

ENQUEUED = Counter("conveyor_tasks_enqueued", "Tasks enqueued by this process.", ["task", "queue"])
STARTED = Counter("conveyor_tasks_started", "Attempts started by this process.", ["task", "queue"])
FINISHED = Counter(
    "conveyor_tasks_finished",
    "Attempts ended by this process, by what they left the task in: SUCCESSFUL, FAILED, "
    "or RETRIED (failed, to be attempted again).",
    ["task", "queue", "status"],
)
WAIT = Histogram(
    "conveyor_task_wait_seconds",
    "From when an attempt was due (enqueued, run_after, or a retry's back-off) to its start.",
    ["queue"],
    buckets=WAIT_BUCKETS,
)
RUN = Histogram(
    "conveyor_task_run_seconds", "How long attempts ran.", ["task", "queue"], buckets=RUN_BUCKETS
)


def enqueued(result: AnyResult) -> None:
    ENQUEUED.labels(result.task.module_path, result.task.queue_name).inc()


def started(record: TaskRecord) -> float:
    """Count a started attempt and its wait; return the time to measure its run from."""
    STARTED.labels(record.task_path, record.queue_name).inc()
    if record.last_attempted_at is not None and record.available_after is not None:
        wait = (record.last_attempted_at - record.available_after).total_seconds()
        WAIT.labels(record.queue_name).observe(max(wait, 0.0))
    return time.monotonic()


def ran(record: TaskRecord, since: float) -> None:
    RUN.labels(record.task_path, record.queue_name).observe(time.monotonic() - since)


def written(items: list[Written]) -> None:
    for item in items:
        record = item.outcome.record
        status = "RETRIED" if item.status == TaskResultStatus.READY else str(item.status)
        FINISHED.labels(record.task_path, record.queue_name, status).inc()


class DatabaseCollector(Collector):
    """Gauges of every conveyor backend, read with Engine.gauges() at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from conveyor.backend import DatabaseBackend

        families = {
            "due": GaugeMetricFamily(
                "conveyor_tasks_due", "READY tasks due now.", labels=["backend", "queue"]
            ),
            "deferred": GaugeMetricFamily(
                "conveyor_tasks_deferred",
                "READY tasks not yet due (run_after or a retry's back-off).",
                labels=["backend", "queue"],
            ),
            "running": GaugeMetricFamily(
                "conveyor_tasks_running", "RUNNING tasks.", labels=["backend", "queue"]
            ),
            "oldest": GaugeMetricFamily(
                "conveyor_oldest_due_age_seconds",
                "How long the longest-waiting due task has waited.",
                labels=["backend", "queue"],
            ),
        }
        workers = GaugeMetricFamily(
            "conveyor_workers_alive", "Workers with a recent heartbeat.", labels=["backend"]
        )
        for backend in task_backends.all():
            if not isinstance(backend, DatabaseBackend):
                continue
            gauges = backend.store.gauges()
            workers.add_metric([backend.alias], gauges.workers_alive)
            for queue in gauges.queues:
                labels = [backend.alias, queue.queue_name]
                families["due"].add_metric(labels, queue.due)
                families["deferred"].add_metric(labels, queue.deferred)
                families["running"].add_metric(labels, queue.running)
                families["oldest"].add_metric(labels, seconds(queue.oldest_due_wait))
        yield from families.values()
        yield workers

    def describe(self) -> list[GaugeMetricFamily]:
        # Registering must not query the database (it would, to learn the names).
        return []


class ServedRegistry:
    """The default registry, for the worker's HTTP server: each scrape runs in a thread of
    its own, whose database connection is closed when the scrape is done."""

    def collect(self) -> Iterator[Metric]:
        try:
            yield from REGISTRY.collect()
        finally:
            connections.close_all()


def seconds(value: timedelta) -> float:
    return value.total_seconds()


COLLECTOR = DatabaseCollector()
REGISTRY.register(COLLECTOR)


def view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus's text format (mount it where only Prometheus reaches)."""
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve the metrics over HTTP from a daemon thread of this process."""
    start_http_server(port, addr=address, registry=ServedRegistry())
