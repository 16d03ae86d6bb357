"""What keeps the task changelist fast on big tables: a capped count, a search by distinct
task paths, and filters whose choices come from settings rather than from the table."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest

from conveyor.backends import conveyor_backends
from conveyor.models import TaskRecord

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
