"""Traces: the enqueuer's context travels in the metadata, and each attempt runs in a span
under it and linked to it, exported here to an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import conveyor
from conveyor import tracing as conveyor_tracing
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.tracing import TRACE_KEY
from conveyor.worker import runner
from tests.factories import claim_all
from tests.tasksapp.tasks import add, fail

pytestmark = [pytest.mark.django_db, pytest.mark.any_database]


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
def spans(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InMemorySpanExporter]:
    """Spans of conveyor's tracer, exported here. The global tracer provider is left alone
    (it can be set once per process, and other tests enqueue with tracing installed)."""
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(conveyor_tracing, "tracer", provider.get_tracer("conveyor"))
    # A worker thread closes its connection after each task; this test's holds its data.
    monkeypatch.setattr(runner, "close_old_connections", lambda: None)
    yield exported
    provider.shutdown()


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name.startswith(prefix)]


def test_an_attempt_runs_in_a_span_under_and_linked_to_the_enqueue(
    backend: DatabaseBackend, spans: InMemorySpanExporter, provider: TracerProvider
) -> None:
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("GET /reports") as request:
        result = add.enqueue(2, 3)
    assert TRACE_KEY in conveyor.metadata(result)
    (claimed,) = claim_all(backend.store, "w1")
    outcome = runner.run_sync(claimed, [])
    assert outcome.status == TaskResultStatus.SUCCESSFUL

    (enqueue,) = named(spans, "enqueue ")
    (run,) = named(spans, "run ")
    assert enqueue.kind == SpanKind.PRODUCER
    assert run.kind == SpanKind.CONSUMER
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert run.context.trace_id == request.get_span_context().trace_id
    assert run.parent is not None
    assert run.parent.span_id == enqueue.context.span_id
    assert [link.context.span_id for link in run.links] == [enqueue.context.span_id]
    assert dict(run.attributes or {}) == {
        "conveyor.task.id": result.id,
        "conveyor.task.path": add.module_path,
        "conveyor.queue": "default",
        "conveyor.attempt": 1,
        "conveyor.worker.id": "w1",
    }
    assert run.status.status_code == StatusCode.OK


def test_failed_attempts_and_their_retries_are_spans_of_the_same_trace(
    backend: DatabaseBackend, spans: InMemorySpanExporter
) -> None:
    result = fail.using(queue_name="low_priority").enqueue("no luck")  # max_attempts 3
    for attempt in (1, 2):
        TaskRecord.objects.filter(pk=result.id).update(available_after=backend.store.database_now())
        (claimed,) = claim_all(backend.store, "w1")
        assert claimed.attempt_count == attempt
        outcome = runner.run_sync(claimed, [])
        backend.store.finish(worker_id="w1", outcomes=[outcome])

    (enqueue,) = named(spans, "enqueue ")
    runs = named(spans, "run ")
    assert [span.attributes["conveyor.attempt"] for span in runs] == [1, 2]  # type: ignore[index]
    for run in runs:
        assert run.context.trace_id == enqueue.context.trace_id
        assert run.status.status_code == StatusCode.ERROR
        assert run.status.description == "builtins.ValueError"
        (event,) = run.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert event.attributes["exception.message"] == "no luck"


def test_without_a_recording_tracer_nothing_is_stored(backend: DatabaseBackend) -> None:
    result = add.enqueue(1, 1)  # the API alone, no SDK: conveyor's tracer records nothing
    assert TaskRecord.objects.get(pk=result.id).metadata is None
