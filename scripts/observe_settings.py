"""Settings of scripts.observe_overhead: the operations settings, with metrics and tracing
switched by CONVEYOR_OBSERVE: "neither", "metrics", "tracing" (every span recorded) or
"tracing-sampled" (spans recorded as the enqueuer's sampling decided, ParentBased)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from scripts.operations_settings import *  # noqa: F403

MODE = os.environ.get("CONVEYOR_OBSERVE", "neither")
CONVEYOR_METRICS = MODE == "metrics"
CONVEYOR_TRACING = MODE.startswith("tracing")

if MODE in ("tracing", "tracing-sampled"):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Discard(SpanExporter):
        """Exports nowhere: what is measured is recording and batching spans."""

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=sampling.ParentBased(sampling.ALWAYS_ON))
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    trace.set_tracer_provider(provider)
