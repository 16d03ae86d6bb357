"""Small factories for task rows in known states."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from conveyor.columns import HOLD_NONE, HOLD_TIME
from conveyor.compat import Task, TaskResult
from conveyor.models import TaskRecord
from conveyor.store import Engine, QueueFilter
from tests.tasksapp.tasks import add

ALL_QUEUES = QueueFilter()


def enqueue(task: Task[Any, Any] = add, *args: Any, **fields: Any) -> TaskRecord:
    """Enqueue through the backend, then set row fields directly (e.g. available_after)."""
    result: TaskResult[Any, Any] = task.enqueue(*(args or (1, 2)))
    if "available_after" in fields and "hold" not in fields:
        # As the store keeps it: a READY row not due yet is held until the claim stages it.
        fields["hold"] = HOLD_TIME if fields["available_after"] > timezone.now() else HOLD_NONE
    if fields:
        TaskRecord.objects.filter(pk=result.id).update(**fields)
    return TaskRecord.objects.get(pk=result.id)


def ago(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)


def later(**delta: float) -> datetime:
    return timezone.now() + timedelta(**delta)


def claim_all(store: Engine, worker_id: str = "w1", limit: int = 100) -> list[TaskRecord]:
    return store.claim(worker_id=worker_id, queues=ALL_QUEUES, limit=limit)


def forget_task_statistics() -> None:
    """Drop the planner's statistics of the task table, as on a new table: on PostgreSQL
    before autovacuum's first look (or with autovacuum off; skip the test where that needs a
    superuser); on SQLite, which gathers none until the application runs ANALYZE."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
            if cursor.fetchone() is not None:
                cursor.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'conveyor_task'")
                cursor.execute("ANALYZE sqlite_master")  # reloads what is left, analyzes nothing
            return
        try:
            cursor.execute("DELETE FROM pg_statistic WHERE starelid = 'conveyor_task'::regclass")
        except DatabaseError as exc:
            pytest.skip(f"needs a superuser to forget statistics: {exc}")
