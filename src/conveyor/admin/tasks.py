"""The admin of task results: a fast changelist, a detail page with every attempt, and the
operator actions (retry, run now, cancel, delete)."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.tasks import TaskResultStatus
from django.utils.html import format_html

from conveyor.admin.dates import date_drilldown
from conveyor.admin.listing import (
    BackendFilter,
    CappedCountPaginator,
    QueueFilter,
    task_paths,
)
from conveyor.admin.operations import Operation, delete_tasks, describe, perform
from conveyor.backend import MAX_RESULT_ID_DIGITS
from conveyor.models import Attempt, TaskRecord

RUNNING = TaskResultStatus.RUNNING
BOTH_PLACES = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]

RETRY = Operation(
    done="Retried",
    refusal="only FAILED tasks can be retried",
    change_message="Retried: FAILED -> READY now, attempt budget renewed",
    apply=lambda store, ids, request: store.retry(ids),
)
RUN_NOW = Operation(
    done="Made available now:",
    refusal="only READY tasks that are not due yet can be run now",
    change_message="Run now: available at once instead of later",
    apply=lambda store, ids, request: store.run_now(ids),
)
CANCEL = Operation(
    done="Cancelled",
    refusal="only READY tasks can be cancelled",
    change_message="Cancelled: READY -> FAILED with TaskCancelled",
    apply=lambda store, ids, request: store.cancel(
        ids, cancelled_by=f"admin:{request.user.get_username()}"
    ),
)


TASK_FIELDS = (
    "id",
    "task_path",
    "status",
    "backend_name",
    "queue_name",
    "priority",
    "takes_context",
    "attempt_count",
    "worker_id",
)
TIME_FIELDS = (
    "enqueued_at",
    "run_after",
    "available_after",
    "started_at",
    "last_attempted_at",
    "finished_at",
)
DATA_FIELDS = ("arguments_json", "return_value_json")


def pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


class AttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    """Every attempt of the task, oldest first, with its worker, times and error."""

    model = Attempt
    fields = readonly_fields = (
        "status",
        "worker_id",
        "started_at",
        "stopped_at",
        "duration",
        "error_details",
    )
    extra = 0
    can_delete = False
    ordering = ("id",)
    verbose_name_plural = "attempts"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        return super().get_queryset(request).select_related("error")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may see a task may see its attempts.
        opts = TaskRecord._meta
        return any(
            request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}")
            for action in ("view", "change")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration")
    def duration(self, attempt: Attempt) -> timedelta:
        return attempt.stopped_at - attempt.started_at

    @admin.display(description="error")
    def error_details(self, attempt: Attempt) -> str:
        error = getattr(attempt, "error", None)
        if error is None:
            return "-"
        return format_html(
            "<strong>{}</strong><pre>{}</pre>", error.exception_class_path, error.traceback
        )


class TaskChangeList(ChangeList):
    """The changelist reads no argument or return value columns (they can be large), sorts
    only by indexed columns (even when the URL asks for another), and drills down by date
    from the table's bounds (see conveyor.admin.dates)."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        return super().get_queryset(request, exclude_parameters).defer("arguments", "return_value")

    @cached_property
    def date_drilldown(self) -> dict[str, Any]:
        return date_drilldown(self)

    def get_ordering_field(self, field_name: Any) -> Any:
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


@admin.register(TaskRecord)
class TaskRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Task results. Rows change only through the actions, never through the form."""

    list_display = (
        "id",
        "task_path",
        "queue_name",
        "priority",
        "status",
        "attempt_count",
        "enqueued_at",
        "started_at",
        "finished_at",
        "worker_id",
    )
    list_display_links = ("id", "task_path")
    list_filter = ("status", QueueFilter, BackendFilter)
    search_fields = ("task_path",)
    search_help_text = "A task id, or part of a task path."
    date_hierarchy = "enqueued_at"
    # Only indexed columns: sorting by any other would sort the whole table.
    sortable_by = ("id", "enqueued_at", "finished_at")
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    inlines = (AttemptInline,)
    actions = ("retry", "run_now", "cancel", "delete_selected")
    fieldsets = (
        (None, {"fields": TASK_FIELDS}),
        ("Times", {"fields": TIME_FIELDS}),
        ("Arguments and result", {"fields": DATA_FIELDS}),
    )
    readonly_fields = TASK_FIELDS + TIME_FIELDS + DATA_FIELDS

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TaskRecord], search_term: str
    ) -> tuple[QuerySet[TaskRecord], bool]:
        """An id (digits, optionally after '#') finds that task; other text finds the tasks
        whose path contains it, ignoring case."""
        term = search_term.strip()
        if not term:
            return queryset, False
        digits = term.removeprefix("#")
        if digits.isascii() and digits.isdigit() and len(digits) <= MAX_RESULT_ID_DIGITS:
            return queryset.filter(pk=int(digits)), False
        # Match the few distinct paths, then select rows by the task_path index: a LIKE
        # '%term%' would read every row, twice (page and count), for a term that matches none.
        paths = [path for path in task_paths(queryset.db) if term.lower() in path.lower()]
        return queryset.filter(task_path__in=paths), False

    @admin.display(description="arguments")
    def arguments_json(self, record: TaskRecord) -> str:
        return pretty_json(record.arguments)

    @admin.display(description="return value")
    def return_value_json(self, record: TaskRecord) -> str:
        if record.status != TaskResultStatus.SUCCESSFUL:
            return "-"
        return pretty_json(record.return_value)

    # -- permissions: nobody edits a task row through the form --------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change permission allows the actions; the detail page itself is read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status == RUNNING:
            return False  # a worker is running it; let it finish, or stop the worker
        return super().has_delete_permission(request, obj)

    # -- actions -------------------------------------------------------------------------------

    @admin.action(
        description="Retry now (failed tasks; renews their attempts)",
        permissions=["change"],
        location=BOTH_PLACES,
    )
    def retry(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        perform(request, queryset, RETRY)

    @admin.action(
        description="Run now (deferred ready tasks)", permissions=["change"], location=BOTH_PLACES
    )
    def run_now(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        perform(request, queryset, RUN_NOW)

    @admin.action(
        description="Cancel (ready tasks; they end failed)",
        permissions=["change"],
        location=BOTH_PLACES,
    )
    def cancel(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        perform(request, queryset, CANCEL)

    @admin.action(description="Delete selected tasks", permissions=["delete"])
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[TaskRecord]
    ) -> HttpResponse | None:
        """Django's delete, after setting aside running tasks (refused with a message)."""
        running = list(queryset.filter(status=RUNNING).values_list("pk", flat=True))
        if running:
            messages.warning(
                request,
                f"Refused {describe(running)}: running tasks cannot be deleted. "
                "Nothing was changed for them.",
            )
        deletable = queryset.exclude(status=RUNNING)
        if not deletable.exists():
            return None
        return django_delete_selected(self, request, deletable)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        # Through the store, which leaves a task claimed since the confirmation page to its
        # worker.
        delete_tasks(queryset)

    def delete_model(self, request: HttpRequest, obj: TaskRecord) -> None:
        delete_tasks(self.get_queryset(request).filter(pk=obj.pk))
