"""The admin of task results: a changelist that fits a laptop screen and stays fast on big
tables, a detail page that leads with a failure's error, and the operator actions (retry,
run now, cancel, delete)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypedDict, override

import django
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Now
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from conveyor.admin import display
from conveyor.admin.dashboard import dashboard_view
from conveyor.admin.dates import date_drilldown
from conveyor.admin.listing import (
    AttemptSummary,
    BackendFilter,
    CappedCountPaginator,
    QueueFilter,
    attempt_summaries,
    database_now,
    task_paths,
)
from conveyor.admin.operations import Operation, delete_tasks, describe, perform
from conveyor.backend import MAX_RESULT_ID_DIGITS
from conveyor.backends import conveyor_backends
from conveyor.columns import HOLD_SLOT
from conveyor.compat import TaskResultStatus
from conveyor.context import PROGRESS_KEY
from conveyor.models import Attempt, Error, TaskRecord

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


# Django 6.1 offers an action on the object's page too: the task's page shows the actions
# that apply to it as buttons. Before 6.1 the actions are on the task list only.
class Places(TypedDict, total=False):
    location: list[ActionLocation]


if TYPE_CHECKING or django.VERSION >= (6, 1):
    from django.contrib.admin import ActionLocation

    BOTH_PLACES = Places(location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM])
else:
    BOTH_PLACES = Places()

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
    refusal="only READY and RUNNING tasks can be cancelled",
    change_message="Cancelled: READY -> FAILED with TaskCancelled",
    apply=lambda store, ids, request: store.cancel(
        ids, cancelled_by=f"admin:{request.user.get_username()}"
    ),
)
STOP = Operation(
    done="Asked the workers to stop",
    refusal="only READY and RUNNING tasks can be cancelled",
    change_message="Cancel requested: its worker stops the running task",
    apply=lambda store, ids, request: store.request_cancel(
        ids, requested_by=f"admin:{request.user.get_username()}"
    ),
)


# A task none of whose attempts has ended.
NO_ATTEMPTS = AttemptSummary(ended=0, last_error="")
# What a task's page offers, as buttons: the actions that apply to the task's state.
BUTTONS = {"retry": "Retry now", "run_now": "Run now", "cancel": "Cancel"}

TASK_FIELDS = (
    "id",
    "task_path",
    "status_badge",
    "backend_name",
    "queue_name",
    "priority",
    "takes_context",
    "attempts_made",
    "attempt_budget",
    "worker_id",
)
TIME_FIELDS = (
    "enqueued",
    "requested_run_after",
    "available",
    "due",
    "started",
    "last_attempted",
    "finished",
)
DATA_FIELDS = ("progress_bar", "metadata_json", "arguments_json", "return_value_json")
HELP_TEXTS = {
    "attempts_made": "Runs of this task so far, the one running now included: the result's "
    "attempts.",
    "attempt_budget": "Attempts counted against the task's max_attempts (its own, else its "
    "queue's); snoozes do not count. When none are left, a failure is final. Retrying from "
    "the admin renews the budget.",
    "available": "When the task may run next: its enqueue time, its run_after, or the end of "
    "a retry's back-off.",
}


def pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


def time_column(field: str) -> Callable[[Any, Any], SafeString | str]:
    """A column or field showing a time field to the second."""

    def show(model_admin: Any, obj: Any) -> SafeString | str:
        return display.time(getattr(obj, field))

    return admin.display(description=field.replace("_", " "), ordering=field)(show)


def applicable_actions(record: TaskRecord, now: datetime) -> list[str]:
    """The actions that would change this task now, as the store's actions judge it."""
    if record.status == FAILED:
        return ["retry"]
    if record.status == READY:
        return ["run_now", "cancel"] if record.available_after > now else ["cancel"]
    if record.status == RUNNING and not record.cancel_requested_by:
        return ["cancel"]
    return []


def attempts_made(record: TaskRecord, ended: int | None = None) -> int:
    """The `ended` Attempt rows (counted if not given), and the running attempt, which is
    written when it ends: the result's attempts."""
    if ended is None:
        ended = record.attempts.count()
    return ended + (1 if record.status == RUNNING else 0)


class AttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    """Every attempt of the task, oldest first, numbered 1..n, with its worker, times and
    error."""

    model = Attempt
    template = "admin/conveyor/taskrecord/attempts.html"
    fields = readonly_fields = (
        "status_badge",
        "worker_id",
        "started",
        "stopped",
        "duration",
        "error_details",
    )
    extra = 0
    can_delete = False
    # The template numbers the attempts in this order.
    ordering = ("id",)
    verbose_name_plural = "attempts"

    started = time_column("started_at")
    stopped = time_column("stopped_at")

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

    @admin.display(description="status")
    def status_badge(self, attempt: Attempt) -> SafeString:
        return display.badge(attempt.status)

    @admin.display(description="duration")
    def duration(self, attempt: Attempt) -> str:
        return display.duration(attempt.stopped_at - attempt.started_at)

    @admin.display(description="error")
    def error_details(self, attempt: Attempt) -> SafeString | str:
        error = getattr(attempt, "error", None)
        if error is None:
            return display.EMPTY
        return format_html(
            '<strong>{}</strong><pre class="conveyor-traceback">{}</pre>',
            error.exception_class_path,
            error.traceback,
        )


class TaskChangeList(ChangeList):
    """The changelist reads no argument or return value columns (they can be large), sorts
    only by indexed columns (even when the URL asks for another), drills down by date from
    the table's bounds (see conveyor.admin.dates), and reads the attempts of its page only."""

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        if not self.is_popup:
            # The change permission allows the actions; no task is ever changed by a form.
            self.title = gettext("Select %s to view") % self.opts.verbose_name

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        # Of the metadata, only the progress: the rest is the project's and may be large.
        return (
            super()
            .get_queryset(request, exclude_parameters)
            .defer("arguments", "return_value", "metadata")
            .annotate(progress=KeyTransform(PROGRESS_KEY, "metadata"))
        )

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # The database clock is read with the page (not in the count that wraps its query).
        records = list(self.result_list.annotate(checked_at=Now()))
        summaries = attempt_summaries([r.pk for r in records], self.queryset.db)
        for record in records:
            summary = summaries.get(record.pk, NO_ATTEMPTS)
            record.attempts_made = attempts_made(record, summary.ended)
            record.last_error = summary.last_error
        self.result_list = records

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
        "task",
        "queue",
        "status_badge",
        "attempts",
        "due",
        "enqueued",
        "finished",
        "worker",
        "last_error",
    )
    list_display_links = ("id", "task")
    list_filter = ("status", QueueFilter, BackendFilter)
    search_fields = ("task_path",)
    search_help_text = "A task id, or part of a task path."
    date_hierarchy = "enqueued_at"
    # Only indexed columns: sorting by any other would sort the whole table.
    sortable_by = ("id", "enqueued", "finished")
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    inlines = (AttemptInline,)
    actions = ("retry", "run_now", "cancel", "delete_selected")
    fieldsets = (
        (None, {"fields": TASK_FIELDS}),
        ("Times", {"fields": TIME_FIELDS}),
        ("Progress, metadata, arguments and result", {"fields": DATA_FIELDS}),
    )
    readonly_fields = TASK_FIELDS + TIME_FIELDS + DATA_FIELDS

    class Media:
        css = {"all": ("conveyor/admin.css",)}

    enqueued = time_column("enqueued_at")
    requested_run_after = time_column("run_after")
    available = time_column("available_after")
    started = time_column("started_at")
    last_attempted = time_column("last_attempted_at")
    finished = time_column("finished_at")

    def get_urls(self) -> list[URLPattern]:
        dashboard = self.admin_site.admin_view(partial(dashboard_view, self))
        return [
            path("dashboard/", dashboard, name="conveyor_taskrecord_dashboard"),
            *super().get_urls(),
        ]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Ten columns and the filters need the width of a 1400 px screen: the breadcrumbs
        # lead elsewhere instead of the navigation sidebar.
        context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, context)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[TaskRecord]]:
        # Read-only fields take their help from the form's help texts.
        kwargs.setdefault("help_texts", HELP_TEXTS)
        return super().get_form(request, obj, change, **kwargs)

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

    # -- columns and fields --------------------------------------------------------------------

    @admin.display(description="task")
    def task(self, record: TaskRecord) -> SafeString | str:
        return format_html(
            '<span title="{}">{}</span>', record.task_path, display.task_path(record.task_path)
        )

    @admin.display(description="queue", ordering="queue_name")
    def queue(self, record: TaskRecord) -> SafeString | str:
        """The queue, and the priority when it is not the default."""
        if not record.priority:
            return record.queue_name
        return format_html(
            '{} <span class="conveyor-note">priority {}</span>', record.queue_name, record.priority
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, record: TaskRecord) -> SafeString:
        """The status, and under it the progress when the task reports one."""
        progress = getattr(record, "progress", None)  # annotated by the changelist
        bar = display.progress({PROGRESS_KEY: progress}) if progress is not None else ""
        return format_html("{}{}", display.badge(record.status), bar)

    @admin.display(description="progress")
    def progress_bar(self, record: TaskRecord) -> SafeString | str:
        metadata = record.metadata if isinstance(record.metadata, dict) else {}
        return display.progress(metadata) or display.EMPTY

    @admin.display(description="metadata")
    def metadata_json(self, record: TaskRecord) -> str:
        return pretty_json(record.metadata or {})

    @admin.display(description="attempts")
    def attempts(self, record: TaskRecord) -> int:
        counted: int | None = getattr(record, "attempts_made", None)  # by the changelist
        return attempts_made(record) if counted is None else counted

    @admin.display(description="attempts made")
    def attempts_made(self, record: TaskRecord) -> int:
        return attempts_made(record)

    @admin.display(description="attempt budget used")
    def attempt_budget(self, record: TaskRecord) -> str:
        backend = conveyor_backends().get(record.backend_name)
        if backend is None:
            return (
                f"{record.attempt_count} (max_attempts unknown: backend "
                f"{record.backend_name!r} is not a conveyor backend in TASKS)"
            )
        # The task's own max_attempts, else its queue's; a snooze spends none.
        maximum = backend.policies.max_attempts(record)
        return f"{record.attempt_count - record.snoozes} of {maximum}"

    @admin.display(description="due")
    def due(self, record: TaskRecord) -> SafeString | str:
        """When a READY task may run: 'now', or 'in 40 s' beside why it waits."""
        if record.status != READY:
            return display.EMPTY
        if record.hold == HOLD_SLOT:
            return format_html('<span class="conveyor-note">{}</span>', "waiting for a slot")
        now = getattr(record, "checked_at", None) or database_now(record._state.db or "default")
        when = display.until(record.available_after, now)
        # A READY task that has attempts left is backing off; one that waits without any
        # was enqueued with a run_after.
        why = "retrying" if record.attempt_count else ("deferred" if when != "now" else "")
        exact = display.exact(record.available_after)
        note = format_html(' <span class="conveyor-note">{}</span>', why) if why else ""
        return format_html('<span title="{}">{}</span>{}', exact, when, note)

    @admin.display(description="worker")
    def worker(self, record: TaskRecord) -> SafeString | str:
        return display.with_tooltip(record.worker_id, display.WORKER_ID_SHOWN)

    @admin.display(description="last error")
    def last_error(self, record: TaskRecord) -> SafeString | str:
        excerpt = getattr(record, "last_error", "")
        if not excerpt:
            return display.EMPTY
        return format_html(
            '<span class="conveyor-excerpt" title="{}">{}</span>',
            excerpt,
            display.without_module(excerpt),
        )

    @admin.display(description="arguments")
    def arguments_json(self, record: TaskRecord) -> str:
        return pretty_json(record.arguments)

    @admin.display(description="return value")
    def return_value_json(self, record: TaskRecord) -> str:
        if record.status != TaskResultStatus.SUCCESSFUL:
            return "-"
        return pretty_json(record.return_value)

    # -- the task's page: its error first, and only the actions that apply --------------------

    @override
    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        if obj is not None:
            # One reading of the database clock for the page: "due" and "run now" agree.
            obj.checked_at = now = database_now(obj._state.db or "default")
            error = self.final_error(obj)
            if error is not None:
                context["task_error"] = error
                context["task_error_number"] = obj.attempts.filter(pk__lte=error.pk).count()
            context["task_actions"] = self.buttons(context.get("action_form"), obj, now)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def final_error(self, record: TaskRecord) -> Error | None:
        """The error that ended a FAILED task: its latest attempt's."""
        if record.status != FAILED:
            return None
        errors = Error.objects.using(record._state.db).filter(attempt__task_id=record.pk)
        return errors.select_related("attempt").order_by("-attempt_id").first()

    def buttons(
        self, action_form: Any, record: TaskRecord, now: datetime
    ) -> list[tuple[str, str, str]]:
        """(name, label, description) of the actions offered on the task's page: those the
        user may apply, and that apply to the task's state."""
        if action_form is None:
            return []
        allowed = dict(action_form.fields["action"].choices)
        return [
            (name, BUTTONS[name], str(allowed[name]))
            for name in applicable_actions(record, now)
            if name in allowed
        ]

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
        **BOTH_PLACES,
    )
    def retry(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        perform(request, queryset, RETRY)

    @admin.action(
        description="Run now (deferred ready tasks)", permissions=["change"], **BOTH_PLACES
    )
    def run_now(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        perform(request, queryset, RUN_NOW)

    @admin.action(
        description="Cancel (ready tasks end failed; running ones are stopped by their worker)",
        permissions=["change"],
        **BOTH_PLACES,
    )
    def cancel(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        # Running tasks first: a READY task claimed meanwhile is then refused by both steps,
        # never cancelled twice.
        stopping = perform(request, queryset.filter(status=RUNNING), STOP, quiet_refusals=True)
        perform(request, queryset.exclude(status=RUNNING), CANCEL, changed_before=stopping)

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
