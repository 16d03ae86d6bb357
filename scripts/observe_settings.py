"""Settings of scripts.observe_overhead: the operations settings, with metrics and tracing
switched by CONVEYOR_OBSERVE ("neither", "metrics" or "tracing")."""

from __future__ import annotations

import os
from collections.abc import Sequence

from scripts.operations_settings import *  # noqa: F403

MODE = os.environ.get("CONVEYOR_OBSERVE", "neither")
CONVEYOR_METRICS = MODE == "metrics"
CONVEYOR_TRACING = MODE == "tracing"

if CONVEYOR_TRACING:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Discard(SpanExporter):
        """Exports nowhere: what is measured is recording and batching spans."""

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    trace.set_tracer_provider(provider)
