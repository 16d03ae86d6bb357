"""What keeps the task changelist fast on big tables: a capped count, a search by distinct
task paths, filters whose choices come from settings rather than from the table, and the
attempts of a page read for the page only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, Max, QuerySet
from django.db.models.functions import Now, Right
from django.db.models.sql import Query
from django.http import HttpRequest

from conveyor.admin.display import error_excerpt
from conveyor.backends import conveyor_backends
from conveyor.models import Attempt, Error, TaskRecord

# Count matching rows up to this many; beyond, the changelist says "more than".
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):  # type: ignore[type-arg]
    """Counts at most COUNT_CAP + 1 rows, so a page never waits for COUNT(*) of a big table.

    Pages past the cap are not offered: filters and the date drill-down narrow a big
    selection faster than deep OFFSETs would.
    """

    cap = COUNT_CAP
    count_capped = False

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if not isinstance(object_list, QuerySet):
            return len(object_list)
        # The ordering is irrelevant to a count and would make the database sort.
        found: int = object_list.order_by()[: self.cap + 1].count()
        self.count_capped = found > self.cap
        return min(found, self.cap)


# Every distinct task path, found by walking the task_path index one value at a time: a probe
# per path instead of a read of every row (PostgreSQL has no loose index scan of its own).
DISTINCT_TASK_PATHS_SQL = """
WITH RECURSIVE paths (task_path) AS (
    SELECT MIN(task_path) FROM {table}
    UNION ALL
    SELECT (SELECT MIN(t.task_path) FROM {table} t WHERE t.task_path > paths.task_path)
    FROM paths WHERE paths.task_path IS NOT NULL
)
SELECT task_path FROM paths WHERE task_path IS NOT NULL
"""


def task_paths(using: str) -> list[str]:
    """The task paths that occur in the task table."""
    connection = connections[using]
    sql = DISTINCT_TASK_PATHS_SQL.format(table=connection.ops.quote_name(TaskRecord._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [path for (path,) in cursor.fetchall()]


# The end of a traceback read for an excerpt: its last line, without reading it all.
TRACEBACK_TAIL = 1000


@dataclass(frozen=True, slots=True)
class AttemptSummary:
    """What a task's Attempt rows say in the changelist."""

    ended: int  # Attempt rows: runs that ended (a running one has none yet)
    last_error: str  # the latest attempt's error, one line; "" when it did not fail


def attempt_summaries(ids: Sequence[int], using: str) -> dict[int, AttemptSummary]:
    """The attempts of a page of tasks: two queries whatever the page's size, each reading
    the attempts of these tasks only (by the attempt table's task index).

    A correlated subquery in the page's SELECT would do the same in one query, but the
    capped count wraps that SELECT and would run it for every counted row.
    """
    if not ids:
        return {}
    per_task = (
        Attempt.objects.using(using)
        .filter(task_id__in=ids)
        .order_by()
        .values("task_id")
        .annotate(ended=Count("pk"), latest=Max("pk"))
    )
    counts = {row["task_id"]: (row["ended"], row["latest"]) for row in per_task}
    task_of = {latest: task_id for task_id, (_, latest) in counts.items()}
    errors = (
        Error.objects.using(using)
        .filter(attempt_id__in=list(task_of))
        .values_list("attempt_id", "exception_class_path", Right("traceback", TRACEBACK_TAIL))
    )
    excerpts = {
        task_of[attempt_id]: error_excerpt(tail) or path for attempt_id, path, tail in errors
    }
    return {
        task_id: AttemptSummary(ended=ended, last_error=excerpts.get(task_id, ""))
        for task_id, (ended, _) in counts.items()
    }


def database_now(using: str) -> datetime:
    """The database's clock, which judges when a task is due (as the claim does)."""
    query = Query(None)
    query.add_annotation(Now(), "now")
    ((now,),) = query.get_compiler(using).results_iter()
    return now  # type: ignore[no-any-return]


class SettingsChoicesFilter(admin.SimpleListFilter):
    """A filter on one column whose choices come from TASKS, never from a DISTINCT scan."""

    column = ""

    def names(self) -> set[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = self.names()
        if self.value():
            names.add(str(self.value()))
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.column: self.value()})


class QueueFilter(SettingsChoicesFilter):
    title = "queue"
    parameter_name = column = "queue_name"

    def names(self) -> set[str]:
        return {queue for backend in conveyor_backends().values() for queue in backend.queues}


class BackendFilter(SettingsChoicesFilter):
    title = "backend"
    parameter_name = column = "backend_name"

    def names(self) -> set[str]:
        return set(conveyor_backends())
