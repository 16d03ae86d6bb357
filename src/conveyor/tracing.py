"""OpenTelemetry traces (needs `django-conveyor[opentelemetry]`): the enqueuer's trace
context travels in the task's metadata, and each attempt runs in a span under it.

Enqueueing records a short PRODUCER span (`enqueue <path>`) in the current trace, the
request's when a web request enqueues, and stores its context under metadata["trace_context"]
(W3C trace context, through the configured propagator). Each attempt runs in a CONSUMER span
(`run <path>`) that is a child of it and links to it, with the task's id, path, queue and
attempt; a failed attempt's span has an ERROR status and the exception. Retries are further
attempts, so further spans in the same trace. With only the API installed (no SDK), nothing
is recorded and nothing is stored. Imported only through conveyor.observe.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.results import AnyTask
from conveyor.store import Outcome

TRACE_KEY = "trace_context"

tracer = trace.get_tracer("conveyor")


def with_trace_context(
    task: AnyTask, metadata: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The metadata with the context of an `enqueue` span in the current trace, if any is
    recorded."""
    attributes = {"conveyor.task.path": task.module_path, "conveyor.queue": task.queue_name}
    carrier: dict[str, str] = {}
    with tracer.start_as_current_span(
        f"enqueue {task.module_path}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        propagate.inject(carrier)
    if not carrier:
        return metadata
    return {**(metadata or {}), TRACE_KEY: carrier}


def attempt_span(record: TaskRecord) -> AbstractContextManager[Span]:
    """The span one attempt runs in, under the enqueuer's context when the task carries it."""
    metadata = record.metadata if isinstance(record.metadata, dict) else {}
    carrier = metadata.get(TRACE_KEY)
    parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
    links = []
    if parent is not None:
        enqueued = trace.get_current_span(parent).get_span_context()
        if enqueued.is_valid:
            links.append(Link(enqueued))
    return tracer.start_as_current_span(
        f"run {record.task_path}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "conveyor.task.id": str(record.pk),
            "conveyor.task.path": record.task_path,
            "conveyor.queue": record.queue_name,
            "conveyor.attempt": record.attempt_count,
            "conveyor.worker.id": record.worker_id,
        },
    )


def attempt_ended(outcome: Outcome) -> None:
    """Mark the current attempt's span with how it ended."""
    span = trace.get_current_span()
    if outcome.status != TaskResultStatus.FAILED:
        span.set_status(Status(StatusCode.OK))
        return
    kind = outcome.error.exception_class_path if outcome.error else "unknown error"
    span.set_status(Status(StatusCode.ERROR, kind))
    if outcome.exception is not None:
        span.record_exception(outcome.exception)
