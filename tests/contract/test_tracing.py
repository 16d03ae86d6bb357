"""Traces: the enqueuer's context travels in the metadata, and each attempt runs in a span
under it and linked to it, exported here to an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

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


TRACE_ID, REQUEST_SPAN_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> TracerProvider:
    """The SDK's provider, with its default sampler (ParentBased, root always on) unless the
    test is parametrised with another."""
    return TracerProvider(sampler=getattr(request, "param", None))


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


def not_sampled_request() -> context.Context:
    """The context of a request that head sampling left out of its trace."""
    request = SpanContext(TRACE_ID, REQUEST_SPAN_ID, is_remote=True, trace_flags=TraceFlags(0))
    return trace.set_span_in_context(NonRecordingSpan(request))


def test_a_trace_that_was_not_sampled_records_nothing_and_its_tasks_follow_the_decision(
    backend: DatabaseBackend, spans: InMemorySpanExporter
) -> None:
    token = context.attach(not_sampled_request())
    try:
        result = add.enqueue(2, 3)
    finally:
        context.detach(token)
    stored = conveyor.metadata(result)[TRACE_KEY]
    assert stored["traceparent"] == f"00-{TRACE_ID:032x}-{REQUEST_SPAN_ID:016x}-00"
    (claimed,) = claim_all(backend.store, "w1")

    attempt = conveyor_tracing.attempt_span(claimed)
    assert attempt is not None
    try:
        current = trace.get_current_span().get_span_context()
        assert (current.trace_id, current.trace_flags.sampled) == (TRACE_ID, False)
        with conveyor_tracing.tracer.start_as_current_span("inside the task") as inside:
            assert not inside.is_recording()
    finally:
        attempt.close(None)
    assert runner.run_sync(claimed, []).status == TaskResultStatus.SUCCESSFUL
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize("provider", [sampling.ALWAYS_ON], indirect=True)
def test_a_sampler_that_records_under_unsampled_parents_is_obeyed(
    backend: DatabaseBackend, spans: InMemorySpanExporter
) -> None:
    token = context.attach(not_sampled_request())
    try:
        add.enqueue(2, 3)
    finally:
        context.detach(token)
    (claimed,) = claim_all(backend.store, "w1")
    runner.run_sync(claimed, [])

    (enqueue,) = named(spans, "enqueue ")
    (run,) = named(spans, "run ")
    assert enqueue.context.trace_id == run.context.trace_id == TRACE_ID
    assert run.parent is not None
    assert run.parent.span_id == enqueue.context.span_id


def test_a_context_with_more_than_a_traceparent_is_read_by_the_propagators(
    backend: DatabaseBackend, spans: InMemorySpanExporter
) -> None:
    carrier = {
        "traceparent": f"00-{TRACE_ID:032x}-{REQUEST_SPAN_ID:016x}-01",
        "tracestate": "vendor=value",
    }
    result = add.enqueue(2, 3)
    TaskRecord.objects.filter(pk=result.id).update(metadata={TRACE_KEY: carrier})
    (claimed,) = claim_all(backend.store, "w1")
    runner.run_sync(claimed, [])

    (run,) = named(spans, "run ")
    assert run.parent is not None
    assert (run.parent.trace_id, run.parent.span_id) == (TRACE_ID, REQUEST_SPAN_ID)
    assert run.context.trace_state.get("vendor") == "value"
