"""Metrics and traces, when their extras are installed: the one door the rest of conveyor
goes through.

`conveyor.metrics` needs prometheus_client (`django-conveyor[prometheus]`) and
`conveyor.tracing` needs OpenTelemetry (`django-conveyor[opentelemetry]`). Neither is
imported, and every hook here is a no-op, unless its package is installed; the settings
CONVEYOR_METRICS and CONVEYOR_TRACING (default True) turn an installed one off.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import import_module
from importlib.util import find_spec
from types import ModuleType
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from conveyor.models import TaskRecord
    from conveyor.results import AnyResult, AnyTask
    from conveyor.store import Outcome, Written


@cache
def metrics() -> ModuleType | None:
    """conveyor.metrics if prometheus_client is installed and CONVEYOR_METRICS allows."""
    if not getattr(settings, "CONVEYOR_METRICS", True) or not installed("prometheus_client"):
        return None
    return import_module("conveyor.metrics")


@cache
def tracing() -> ModuleType | None:
    """conveyor.tracing if OpenTelemetry is installed and CONVEYOR_TRACING allows."""
    if not getattr(settings, "CONVEYOR_TRACING", True) or not installed("opentelemetry"):
        return None
    return import_module("conveyor.tracing")


def installed(package: str) -> bool:
    """Whether a package can be imported, found without importing it."""
    try:
        return find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules (None)
        return False


def reset() -> None:
    """Read the settings again (for tests that change them)."""
    metrics.cache_clear()
    tracing.cache_clear()


def enqueued_metadata(
    task: AnyTask, metadata: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The metadata to store with a new task: with tracing, the enqueuer's trace context."""
    module = tracing()
    return metadata if module is None else module.with_trace_context(task, metadata)


def enqueued(result: AnyResult) -> None:
    module = metrics()
    if module is not None:
        module.enqueued(result)


def written(items: list[Written]) -> None:
    """Ended attempts that reached the database."""
    module = metrics()
    if module is not None:
        module.written(items)


class Observed:
    """One attempt as metrics and traces see it, around it as a context manager; ended() is
    given its outcome."""

    __slots__ = ()

    def __enter__(self) -> Observed:
        return self

    def ended(self, outcome: Outcome) -> Outcome:
        return outcome

    def __exit__(self, *exc_info: Any) -> None:
        return None


NOTHING = Observed()


def attempt(record: TaskRecord) -> Observed:
    """Around one attempt: a span, and the start, wait and run time metrics."""
    metrics_module, tracing_module = metrics(), tracing()
    if metrics_module is None and tracing_module is None:
        return NOTHING
    return ObservedAttempt(record, metrics_module, tracing_module)


class ObservedAttempt(Observed):
    __slots__ = ("metrics", "record", "span", "started", "tracing")

    def __init__(
        self, record: TaskRecord, metrics: ModuleType | None, tracing: ModuleType | None
    ) -> None:
        self.record, self.metrics, self.tracing = record, metrics, tracing
        self.span: Any = None
        self.started = 0.0

    def __enter__(self) -> ObservedAttempt:
        if self.tracing is not None:
            self.span = self.tracing.attempt_span(self.record)
        if self.metrics is not None:
            self.started = self.metrics.started(self.record)
        return self

    def ended(self, outcome: Outcome) -> Outcome:
        if self.metrics is not None:
            self.metrics.ran(self.record, self.started)
        if self.span is not None:
            self.span.ended(outcome)
        return outcome

    def __exit__(self, *exc_info: Any) -> None:
        if self.span is not None:
            self.span.close(exc_info[1])
