"""The task changelist as a plain ModelAdmin with Django's defaults, to compare against."""

from __future__ import annotations

from django.contrib import admin

from conveyor.models import TaskRecord

plain_site = admin.AdminSite(name="plain_admin")


@admin.register(TaskRecord, site=plain_site)
class PlainTaskAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
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
    list_filter = ("status", "queue_name", "backend_name")
    search_fields = ("=id", "task_path")
    date_hierarchy = "enqueued_at"
    list_per_page = 100
