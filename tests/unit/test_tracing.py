"""The traceparent conveyor reads itself is read as W3C's propagator reads it."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from conveyor.tracing import parsed_traceparent

TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE_ID}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID}-00",
        f"00-{TRACE_ID}-{SPAN_ID}-03",
        f"00-{'0' * 32}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",
        f"ff-{TRACE_ID}-{SPAN_ID}-01",
        "garbage",
    ],
)
def test_a_traceparent_is_read_as_the_w3c_propagator_reads_it(value: str) -> None:
    context = TraceContextTextMapPropagator().extract({"traceparent": value})
    expected = trace.get_current_span(context).get_span_context()
    parsed = parsed_traceparent(value)
    if parsed is None:  # left to the propagator, which may still accept another version
        assert not value.startswith("00-") or not expected.is_valid
        return
    assert parsed == expected
    assert (parsed.is_remote, parsed.trace_flags) == (True, expected.trace_flags)
