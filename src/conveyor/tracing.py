"""OpenTelemetry traces (needs `django-conveyor[opentelemetry]`): the enqueuer's trace
context travels in the task's metadata, and each attempt runs in a span under it.

Enqueueing records a short PRODUCER span (`enqueue <path>`) in the current trace, the
request's when a web request enqueues, and stores its context under metadata["trace_context"]
(W3C trace context, through the configured propagator). Each attempt runs in a CONSUMER span
(`run <path>`) that is a child of it and links to it, with the task's id, path, queue and
attempt; a failed attempt's span has an ERROR status and the exception. Retries are further
attempts, so further spans in the same trace. With only the API installed (no SDK), nothing
is recorded and nothing is stored. Imported only through conveyor.observe.

A recorded span costs the SDK about 26 µs, a tenth of a no-op task, so the hooks do no more
than the SDK would need: no work at all without a recording tracer; no span started under a
parent that was not sampled when the sampler is the SDK's ParentBased that drops those (the
parent's context is made current instead, so that the task's own spans follow the same
decision); a bare W3C traceparent parsed here rather than through the propagators' regex.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    NoOpTracer,
    NoOpTracerProvider,
    ProxyTracer,
    ProxyTracerProvider,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.results import AnyTask
from conveyor.store import Outcome

TRACE_KEY = "trace_context"

tracer = trace.get_tracer("conveyor")

OK = Status(StatusCode.OK)
# A traceparent as W3C's propagator writes it (version 00); any other form, and any carrier
# with more than a traceparent, is read by the configured propagator.
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
W3C_PROPAGATORS = {TraceContextTextMapPropagator, W3CBaggagePropagator}


def with_trace_context(
    task: AnyTask, metadata: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The metadata with the context of an `enqueue` span in the current trace, if any is
    recorded. In a trace that is not sampled, under a sampler that drops what such a trace
    holds, no span is started (it would not be recorded) and the trace's own context is
    stored, so that the task's attempts are not recorded either."""
    active = recording_tracer()
    if active is None:
        return metadata
    carrier: dict[str, str] = {}
    current = trace.get_current_span().get_span_context()
    if current.is_valid and not current.trace_flags.sampled and drops_unsampled(active):
        propagate.inject(carrier)  # the span the SDK would start would not be recorded
    else:
        span = active.start_span(
            f"enqueue {task.module_path}",
            kind=SpanKind.PRODUCER,
            attributes={"conveyor.task.path": task.module_path, "conveyor.queue": task.queue_name},
        )
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        span.end()
    if not carrier:
        return metadata
    return {**(metadata or {}), TRACE_KEY: carrier}


class AttemptSpan:
    """The span one attempt runs in, current in its thread or task until closed. Without a
    span (the enqueuer's trace not sampled), the enqueuer's context is current instead."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span | None, current: Context) -> None:
        self.span = span
        self.token = otel_context.attach(current)

    def ended(self, outcome: Outcome) -> None:
        """Mark the span with how the attempt ended."""
        span = self.span
        if span is None:
            return
        if outcome.status != TaskResultStatus.FAILED:
            span.set_status(OK)
            return
        kind = outcome.error.exception_class_path if outcome.error else "unknown error"
        span.set_status(Status(StatusCode.ERROR, kind))
        if outcome.exception is not None:
            span.record_exception(outcome.exception)

    def close(self, exc: BaseException | None) -> None:
        """End the span; an exception that escaped the attempt is recorded on it, as
        OpenTelemetry's use_span would."""
        otel_context.detach(self.token)
        span = self.span
        if span is None:
            return
        if isinstance(exc, Exception) and span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()


def attempt_span(record: TaskRecord) -> AttemptSpan | None:
    """The span one attempt runs in, under the enqueuer's context when the task carries it;
    None when no tracer records anything."""
    active = recording_tracer()
    if active is None:
        return None
    parent = enqueued_context(record)
    enqueued = None if parent is None else trace.get_current_span(parent).get_span_context()
    if enqueued is None or not enqueued.is_valid:
        enqueued, parent = None, None
    elif not enqueued.trace_flags.sampled and drops_unsampled(active):
        return AttemptSpan(None, trace.set_span_in_context(NonRecordingSpan(enqueued)))
    span = active.start_span(
        f"run {record.task_path}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[Link(enqueued)] if enqueued is not None else (),
        attributes={
            "conveyor.task.id": str(record.pk),
            "conveyor.task.path": record.task_path,
            "conveyor.queue": record.queue_name,
            "conveyor.attempt": record.attempt_count,
            "conveyor.worker.id": record.worker_id,
        },
    )
    return AttemptSpan(span, trace.set_span_in_context(span))


def enqueued_context(record: TaskRecord) -> Context | None:
    """The trace context the enqueuer stored in the task's metadata, if any."""
    metadata = record.metadata if isinstance(record.metadata, dict) else {}
    carrier = metadata.get(TRACE_KEY)
    if not isinstance(carrier, dict):
        return None
    value = carrier.get("traceparent")
    if len(carrier) == 1 and isinstance(value, str) and w3c(propagate.get_global_textmap()):
        remote = parsed_traceparent(value)
        if remote is not None:
            return trace.set_span_in_context(NonRecordingSpan(remote), Context())
    return propagate.extract(carrier)


def parsed_traceparent(value: str) -> SpanContext | None:
    """The remote span context of a version 00 traceparent, as W3C's propagator reads it;
    None if it is not one (then the propagator reads it, and ignores it if invalid)."""
    match = TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    flags = TraceFlags(int(match[3], 16))
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)


def recording_tracer() -> Tracer | None:
    """conveyor's tracer, None when it cannot record anything: the API alone (no tracer
    provider set), or the SDK disabled. Worked out again only when the tracer or the global
    provider changes: isinstance() on OpenTelemetry's abstract classes costs microseconds."""
    global resolved  # noqa: PLW0603 - one tuple, replaced whole
    current, provider = tracer, trace.get_tracer_provider()
    if resolved[0] is not current or resolved[1] is not provider:
        resolved = (current, provider, resolve(current, provider))
    return resolved[2]


def resolve(current: Tracer, provider: TracerProvider) -> Tracer | None:
    if isinstance(current, ProxyTracer):
        if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
            return None
        current = provider.get_tracer("conveyor")  # what the ProxyTracer hands spans to
    return None if isinstance(current, NoOpTracer) else current


resolved: tuple[object, object, Tracer | None] = (None, None, None)


def drops_unsampled(active: Tracer) -> bool:
    """Whether the tracer's sampler is the SDK's ParentBased that drops every span whose
    parent is not sampled, local or remote (the default): then such a span need not be
    started to know that it would not be recorded."""
    sampling = sys.modules.get("opentelemetry.sdk.trace.sampling")
    sampler = getattr(active, "sampler", None)
    if sampling is None or type(sampler) is not sampling.ParentBased:
        return False
    delegates = [
        getattr(sampler, "_remote_parent_not_sampled", None),
        getattr(sampler, "_local_parent_not_sampled", None),
    ]
    return all(
        delegate is not None
        and type(delegate) is sampling.StaticSampler
        and delegate.get_description() == "AlwaysOffSampler"
        for delegate in delegates
    )


@lru_cache(maxsize=4)
def w3c(textmap: TextMapPropagator) -> bool:
    """Whether the propagators are W3C's trace context (and baggage) alone, the default:
    then a bare traceparent is read here as they would read it."""
    members = [textmap]
    if type(textmap) is CompositePropagator:
        members = list(getattr(textmap, "_propagators", None) or [])
    kinds = {type(member) for member in members}
    return TraceContextTextMapPropagator in kinds and kinds <= W3C_PROPAGATORS
