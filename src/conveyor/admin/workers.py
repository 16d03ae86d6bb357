"""The admin of the worker registry: who runs tasks, where, and whether it is still alive."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import BooleanField, Case, DurationField, F, QuerySet, When
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from conveyor.admin import display
from conveyor.admin.listing import BackendFilter
from conveyor.backends import conveyor_backends
from conveyor.conf import DEFAULT_WORKER_TIMEOUT
from conveyor.models import WorkerRecord


def alive_expression() -> Case:
    """True when the last heartbeat is within the worker's backend's worker_timeout,
    judged on the database clock (workers of unknown backends get the default timeout)."""
    recent = [
        When(
            backend_name=alias,
            then=Case(
                When(last_heartbeat_at__gte=Now() - backend.config.worker_timeout, then=True),
                default=False,
            ),
        )
        for alias, backend in conveyor_backends().items()
    ]
    otherwise = Case(
        When(last_heartbeat_at__gte=Now() - DEFAULT_WORKER_TIMEOUT, then=True), default=False
    )
    return Case(*recent, default=otherwise, output_field=BooleanField())


class AliveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "alive"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "alive"), ("no", "dead")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(alive=self.value() == "yes")
        return queryset


@admin.register(WorkerRecord)
class WorkerRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Workers as they announce themselves; read-only (workers keep their own rows)."""

    # Whether a worker is alive comes first: the one column that must never scroll away.
    list_display = (
        "worker",
        "alive",
        "heartbeat_age",
        "backend",
        "host",
        "pid",
        "served_queues",
        "started",
    )
    list_display_links = ("worker",)
    list_filter = (AliveFilter, BackendFilter)
    search_fields = ("worker_id", "host")
    ordering = ("started_at",)

    class Media:
        css = {"all": ("conveyor/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkerRecord]:
        age = CombinedExpression(Now(), "-", F("last_heartbeat_at"), output_field=DurationField())
        workers: QuerySet[WorkerRecord] = super().get_queryset(request)
        return workers.annotate(alive=alive_expression(), age=age)

    @admin.display(description="worker id", ordering="worker_id")
    def worker(self, worker: WorkerRecord) -> SafeString | str:
        return display.with_tooltip(worker.worker_id, display.WORKER_ID_SHOWN)

    @admin.display(description="backend", ordering="backend_name")
    def backend(self, worker: WorkerRecord) -> str:
        return worker.backend_name

    @admin.display(description="queues")
    def served_queues(self, worker: WorkerRecord) -> str:
        return ", ".join(worker.queues) if worker.queues else "all"

    @admin.display(description="last heartbeat", ordering="-last_heartbeat_at")
    def heartbeat_age(self, worker: WorkerRecord) -> SafeString:
        """How long ago, on the database clock; the time itself in the tooltip."""
        age: timedelta = worker.age  # type: ignore[attr-defined]
        exact = display.exact(worker.last_heartbeat_at)
        return format_html('<span title="{}">{}</span>', exact, display.ago(age))

    @admin.display(description="started at", ordering="started_at")
    def started(self, worker: WorkerRecord) -> SafeString | str:
        return display.time(worker.started_at)

    @admin.display(description="alive", boolean=True, ordering="alive")
    def alive(self, worker: WorkerRecord) -> bool:
        return bool(worker.alive)  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
