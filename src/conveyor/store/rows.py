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
# in the statement so that reading a reply needs no description of it.
TASK_COLUMNS = tuple(str(field.column) for field in TaskRecord._meta.concrete_fields)


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
    """What turns rows of one column list into TaskRecords on one connection."""

    connection: BaseDatabaseWrapper
    signals: bool
    width: int
    compiler: Any
    converters: dict[int, Any]
    order: list[int]
    build: Callable[[list[Any]], TaskRecord]


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

    def records(
        self, cursor: CursorWrapper, columns: Sequence[str] | None = None
    ) -> list[TaskRecord]:
        """Rows of conveyor_task as TaskRecords; `columns` names what the statement selected
        (TASK_COLUMNS, say), else the cursor's description does."""
        records, _ = self.records_and_extra(cursor, columns)
        return records

    def records_and_extra(
        self, cursor: CursorWrapper, columns: Sequence[str] | None = None
    ) -> tuple[list[TaskRecord], list[tuple[Any, ...]]]:
        """Rows of conveyor_task as TaskRecords, and per row the values of any further
        columns (not conveyor_task's) that the statement selected after them."""
        if columns is None:
            columns = [column[0] for column in cursor.description]
        plan = self.plan(tuple(columns))
        rows = cursor.fetchall()
        width = plan.width
        task_rows: Iterable[Sequence[Any]] = [row[:width] for row in rows]
        if plan.converters:
            task_rows = plan.compiler.apply_converters(task_rows, plan.converters)
        order, build = plan.order, plan.build
        records = [build([row[i] for i in order]) for row in task_rows]
        return records, [tuple(row[width:]) for row in rows]

    def plan(self, columns: tuple[str, ...]) -> RowPlan:
        """How rows of these columns become TaskRecords on this thread's connection: made
        once per statement shape (a claim's fixed cost was mostly this)."""
        connection = self.connection
        plans: dict[tuple[str, ...], RowPlan] = self._plans.__dict__.setdefault("by_columns", {})
        plan = plans.get(columns)
        if plan is not None and plan.connection is connection and plan.signals == signalled():
            return plan
        by_column = {f.column: f for f in TaskRecord._meta.concrete_fields}
        fields = [by_column[name] for name in columns if name in by_column]
        compiler = connection.ops.compiler("SQLCompiler")(
            TaskRecord.objects.none().query, connection, self.using
        )
        converters = compiler.get_converters([f.get_col(TaskRecord._meta.db_table) for f in fields])
        # Model.from_db takes values in the model's field order, which need not be the table's
        # column order (a column added by a migration comes last in the table).
        position = {f.attname: i for i, f in enumerate(fields)}
        attnames = [f.attname for f in TaskRecord._meta.concrete_fields if f.attname in position]
        plan = plans[columns] = RowPlan(
            connection=connection,
            signals=signalled(),
            width=len(fields),
            compiler=compiler,
            converters=converters,
            order=[position[name] for name in attnames],
            build=self.builder(attnames),
        )
        return plan

    def builder(self, attnames: list[str]) -> Callable[[list[Any]], TaskRecord]:
        """Model.from_db, or, when no one listens to TaskRecord's pre_init and post_init
        signals, the same instance built without __init__ (a claim builds one per row)."""
        using = self.using
        if signalled():
            return partial(TaskRecord.from_db, using, attnames)
        if len(attnames) != len(TaskRecord._meta.concrete_fields):
            return partial(TaskRecord.from_db, using, attnames)  # deferred fields: the ORM's way

        def build(values: list[Any]) -> TaskRecord:
            record = TaskRecord.__new__(TaskRecord)
            record.__dict__.update(zip(attnames, values, strict=True))
            state = record._state = ModelState()
            state.adding, state.db = False, using
            return record

        return build
