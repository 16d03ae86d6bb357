"""The admin of periodic tasks, queues and limits: every schedule with its last tick, that
tick's status and the next tick, with "run now"; every queue, with pause and resume; every
concurrency key with its slots.

Both lists come from the settings and the store, not from one table, so each is a page of
its own under the model that holds its state; every change goes through the store.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from conveyor.backends import conveyor_backends
from conveyor.compat import DEFAULT_TASK_QUEUE_NAME
from conveyor.models import PausedQueue, ScheduleTick, Semaphore
from conveyor.periodic import scheduled_task
from conveyor.schedules import ScheduleError
from conveyor.status import schedule_states


class StatePageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A page listing state from the settings and the store, with buttons that change it."""

    template_name = ""
    title = ""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            self.act(request)
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": self.title,
            "opts": self.model._meta,
            "can_change": self.has_change_permission(request),
            "rows": self.rows(),
        }
        return TemplateResponse(request, self.template_name, context)

    def get_urls(self) -> list[URLPattern]:
        # The page alone: its model's rows are the store's, never edited one by one.
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def act(self, request: HttpRequest) -> None:
        raise NotImplementedError

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ScheduleTick)
class ScheduleAdmin(StatePageAdmin):
    template_name = "admin/conveyor/schedules.html"
    title = "Schedules"

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for alias, backend in sorted(conveyor_backends().items()):
            now = backend.store.database_now()
            rows += [
                {"backend": alias, "state": state} for state in schedule_states(backend.store, now)
            ]
        return rows

    def act(self, request: HttpRequest) -> None:
        """Run now: enqueue one task of the schedule, outside its ticks."""
        alias, name = request.POST.get("backend", ""), request.POST.get("schedule", "")
        backend = conveyor_backends().get(alias)
        schedule = None if backend is None else backend.config.periodic.get(name)
        if backend is None or schedule is None:
            messages.error(request, f"No schedule {name!r} in TASKS[{alias!r}]: nothing was run.")
            return
        try:
            pk = backend.store.run_schedule(scheduled_task(backend, schedule), schedule_name=name)
        except ScheduleError as exc:
            messages.error(request, str(exc))
            return
        messages.success(request, f"Enqueued task #{pk} of schedule {name!r}.")


@admin.register(PausedQueue)
class QueueAdmin(StatePageAdmin):
    template_name = "admin/conveyor/queues.html"
    title = "Queues"

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for alias, backend in sorted(conveyor_backends().items()):
            paused = backend.store.paused_queues()
            configured = set(backend.queues) or {DEFAULT_TASK_QUEUE_NAME}
            for name in sorted(configured | paused.keys()):
                rows.append({"backend": alias, "queue": name, "paused_since": paused.get(name)})
        return rows

    def act(self, request: HttpRequest) -> None:
        """Pause or resume a queue of a backend."""
        alias, name = request.POST.get("backend", ""), request.POST.get("queue", "")
        action = request.POST.get("action")
        backend = conveyor_backends().get(alias)
        if backend is None or action not in ("pause", "resume") or not name:
            messages.error(request, "Nothing was changed: unknown backend, queue or action.")
            return
        if action == "pause":
            done = backend.store.pause_queue(name)
            text = "Paused" if done else "Already paused:"
        else:
            done = backend.store.resume_queue(name)
            text = "Resumed" if done else "Not paused:"
        (messages.success if done else messages.warning)(request, f"{text} queue {name!r}.")


@admin.register(Semaphore)
class LimitAdmin(StatePageAdmin):
    """Concurrency keys with live tasks: how many hold a slot, run and wait."""

    template_name = "admin/conveyor/limits.html"
    title = "Concurrency and rate limits"

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"backend": alias, "slot": slot}
            for alias, backend in sorted(conveyor_backends().items())
            for slot in backend.store.slots()
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data is not None:
            response.context_data["rates"] = [
                {"backend": alias, "rate": rate}
                for alias, backend in sorted(conveyor_backends().items())
                for rate in backend.store.rate_states()
            ]
        return response

    def act(self, request: HttpRequest) -> None:
        messages.error(request, "Nothing to change here: limits are set on the tasks.")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
