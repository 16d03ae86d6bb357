"""Rows of hand-written statements -> TaskRecords and datetimes, as the ORM would build them.

The ORM's own converters are applied (aware datetimes on USE_TZ, JSON decoded), through the
compiler that a queryset uses; `Model.objects.raw()` does the same but costs several times
more per row, and claims are on the hot path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from conveyor.models import TaskRecord

# Every column of conveyor_task, in the model's order: what the hot statements return, named
# in the statement so that reading a reply needs no description of it, and in the order
# Model.from_db takes its values (a column added by a migration comes last in the table).
FIELDS = tuple(TaskRecord._meta.concrete_fields)
TASK_COLUMNS = tuple(str(field.column) for field in FIELDS)
ATTNAMES = [field.attname for field in FIELDS]


def task_columns(quote: Callable[[str], str], alias: str = "") -> str:
    """TASK_COLUMNS as a select list, each quoted (and qualified by the table's alias)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{quote(column)}" for column in TASK_COLUMNS)


def signalled() -> bool:
    """Whether TaskRecord's init signals have receivers (records are then built by
    Model.from_db, which sends them)."""
    return pre_init.has_listeners(TaskRecord) or post_init.has_listeners(TaskRecord)


@dataclass(frozen=True, slots=True)
class RowPlan:
    """What turns rows of TASK_COLUMNS into TaskRecords on one connection."""

    connection: BaseDatabaseWrapper
    signals: bool
    compiler: Any
    converters: dict[int, Any]
    build: Callable[[Sequence[Any]], TaskRecord]


class RowReader:
    """Converts values read by hand-written statements on one database (any thread's
    connection to it: Django's connections are per thread, their converters are not)."""

    def __init__(self, using: str) -> None:
        self.using = using
        field = TaskRecord._meta.get_field("finished_at")
        self._datetime_column = field.get_col(TaskRecord._meta.db_table)
        self._datetime_converters = [
            *self.connection.ops.get_db_converters(self._datetime_column),
            *field.get_db_converters(self.connection),
        ]
        self._plans = threading.local()  # each thread's connection has its own

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.using]

    def datetime(self, value: Any) -> datetime:
        """A datetime column value as the ORM would return it (aware, on USE_TZ)."""
        connection = self.connection
        for converter in self._datetime_converters:
            value = converter(value, self._datetime_column, connection)
        converted: datetime = value
        return converted

    def records(self, cursor: CursorWrapper) -> list[TaskRecord]:
        """Rows of TASK_COLUMNS (as `task_columns()` selects them) as TaskRecords."""
        records, _ = self.records_and_extra(cursor)
        return records

    def records_and_extra(
        self, cursor: CursorWrapper
    ) -> tuple[list[TaskRecord], list[tuple[Any, ...]]]:
        """Rows that start with TASK_COLUMNS as TaskRecords, and per row the values of any
        further columns that the statement selected after them."""
        plan = self.plan()
        rows = cursor.fetchall()
        width = len(TASK_COLUMNS)
        task_rows: Iterable[Sequence[Any]] = [row[:width] for row in rows]
        if plan.converters:
            task_rows = plan.compiler.apply_converters(task_rows, plan.converters)
        build = plan.build
        records = [build(row) for row in task_rows]
        return records, [tuple(row[width:]) for row in rows]

    def plan(self) -> RowPlan:
        """How rows become TaskRecords on this thread's connection: made once (a claim's
        fixed cost was mostly this), again if the connection or the init signals change."""
        connection = self.connection
        plan: RowPlan | None = getattr(self._plans, "plan", None)
        if plan is not None and plan.connection is connection and plan.signals == signalled():
            return plan
        compiler = connection.ops.compiler("SQLCompiler")(
            TaskRecord.objects.none().query, connection, self.using
        )
        table = TaskRecord._meta.db_table
        plan = self._plans.plan = RowPlan(
            connection=connection,
            signals=signalled(),
            compiler=compiler,
            converters=compiler.get_converters([field.get_col(table) for field in FIELDS]),
            build=self.builder(),
        )
        return plan

    def builder(self) -> Callable[[Sequence[Any]], TaskRecord]:
        """Model.from_db, or, when no one listens to TaskRecord's pre_init and post_init
        signals, the same instance built without __init__ (a claim builds one per row)."""
        using = self.using
        if signalled():
            return partial(TaskRecord.from_db, using, ATTNAMES)

        def build(values: Sequence[Any]) -> TaskRecord:
            record = TaskRecord.__new__(TaskRecord)
            record.__dict__.update(zip(ATTNAMES, values, strict=True))
            state = record._state = ModelState()
            state.adding, state.db = False, using
            return record

        return build
