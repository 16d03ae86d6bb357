"""The dashboard: one page that answers "is it keeping up, what is failing, how long do
tasks wait, who is working?" over the last hour or day, with charts drawn on the server.

Everything is read through the store (Engine.activity, gauges and workers): a few queries
on the per-minute rollup, the last minutes' finished rows and the ready rows, whatever the
size of the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from conveyor.admin import charts, display
from conveyor.backend import DatabaseBackend
from conveyor.backends import conveyor_backends
from conveyor.store import Activity, WaitCounts

# The failing tasks listed.
FAILING_TOP = 10


@dataclass(frozen=True, slots=True)
class Window:
    """A span of time the dashboard shows, and the buckets it is cut into."""

    label: str
    since: timedelta
    bucket: str  # "minute" or "hour", as Engine.activity takes it
    step: timedelta
    time_format: str

    def starts(self, now: datetime) -> list[datetime]:
        """The start of every bucket of the window, oldest first, the current one last."""
        now = now.astimezone(UTC)
        current = now.replace(second=0, microsecond=0)
        if self.bucket == "hour":
            current = current.replace(minute=0)
        count = round(self.since / self.step)
        return [current - self.step * (count - 1 - i) for i in range(count)]


WINDOWS = {
    "hour": Window(
        "last hour, per minute", timedelta(hours=1), "minute", timedelta(minutes=1), "%H:%M"
    ),
    "day": Window("last day, per hour", timedelta(days=1), "hour", timedelta(hours=1), "%H:00"),
}


def finished_series(activity: Activity, starts: list[datetime]) -> list[charts.Series]:
    index = {start: i for i, start in enumerate(starts)}
    counts = {status: [0.0] * len(starts) for status in ("SUCCESSFUL", "FAILED")}
    for start, status, n in activity.finished:
        position = index.get(start.astimezone(UTC))
        if position is not None and status in counts:
            counts[status][position] += n
    return [
        charts.Series("successful", "conveyor-series--successful", counts["SUCCESSFUL"]),
        charts.Series("failed", "conveyor-series--failed", counts["FAILED"]),
    ]


def wait_series(activity: Activity, starts: list[datetime]) -> list[charts.Series]:
    """p50 and p95 of the waits of the tasks finished in each bucket, to their wait bucket."""
    by_start = {counts.start.astimezone(UTC): counts for counts in activity.waits}
    per_bucket = [by_start.get(start) for start in starts]
    return [
        charts.Series(name, css, [wait_seconds(counts, fraction) for counts in per_bucket])
        for name, css, fraction in (
            ("p50", "conveyor-series--p50", 0.50),
            ("p95", "conveyor-series--p95", 0.95),
        )
    ]


def wait_seconds(counts: WaitCounts | None, fraction: float) -> float | None:
    value = None if counts is None else counts.percentile(fraction)
    return None if value is None else value.total_seconds()


def seconds(value: float) -> str:
    return display.duration(timedelta(seconds=value))


def dashboard_context(backend: DatabaseBackend, window: Window) -> dict[str, Any]:
    """What the page shows, read from the store of one backend."""
    store = backend.store
    activity = store.activity(since=window.since, bucket=window.bucket, top=FAILING_TOP)
    gauges = store.gauges()
    starts = window.starts(activity.now)
    finished = finished_series(activity, starts)
    waits = wait_series(activity, starts)
    workers = [
        (worker, activity.now - worker.last_heartbeat_at <= backend.config.worker_timeout)
        for worker in store.workers()
    ]
    return {
        "window": window,
        "now": activity.now,
        "finished_total": {s.name: int(sum(v or 0 for v in s.values)) for s in finished},
        "finished_chart": charts.stacked_bars(
            starts, finished, label="Tasks finished by status", time_format=window.time_format
        ),
        "wait_counted": sum(
            counts.waited for counts in activity.waits if counts.start.astimezone(UTC) >= starts[0]
        ),
        "wait_chart": charts.lines(
            starts, waits, label="Wait p50 and p95", time_format=window.time_format, show=seconds
        ),
        "due_chart": charts.bar_list(
            [
                (
                    q.queue_name,
                    q.due,
                    f"{q.due} due, oldest waiting {display.duration(q.oldest_due_wait)}; "
                    f"{q.deferred} deferred, {q.running} running",
                )
                for q in sorted(gauges.queues, key=lambda q: q.queue_name)
            ],
            css="conveyor-series--due",
        ),
        "failing_chart": charts.bar_list(
            [(display.task_path(path), n, f"{n} failed") for path, n in activity.failing],
            css="conveyor-series--failed",
        ),
        "workers": [
            (worker, alive, display.duration(activity.now - worker.last_heartbeat_at))
            for worker, alive in workers
        ],
        "workers_alive": sum(1 for _, alive in workers if alive),
        "has_queues": bool(gauges.queues),
        "has_failing": bool(activity.failing),
    }


def dashboard_view(model_admin: admin.ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """The dashboard of one conveyor backend (?backend=) over one window (?window=)."""
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    backends = conveyor_backends()
    if not backends:
        raise Http404("No conveyor backend in TASKS")
    alias = request.GET.get("backend") or next(iter(backends))
    window_name = request.GET.get("window", "hour")
    if alias not in backends or window_name not in WINDOWS:
        raise Http404("Unknown backend or window")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Task dashboard",
        "opts": model_admin.opts,
        "backend_alias": alias,
        "backend_aliases": sorted(backends),
        "window_name": window_name,
        "windows": WINDOWS,
        **dashboard_context(backends[alias], WINDOWS[window_name]),
    }
    return TemplateResponse(request, "admin/conveyor/dashboard.html", context)
