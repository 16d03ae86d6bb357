"""Rows of hand-written statements -> TaskRecords and datetimes, as the ORM would build them.

The ORM's own converters are applied (aware datetimes on USE_TZ, JSON decoded), through the
compiler that a queryset uses; `Model.objects.raw()` does the same but costs several times
more per row, and claims are on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from conveyor.models import TaskRecord


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
        """Rows of conveyor_task (any column order) as TaskRecords."""
        records, _ = self.records_and_extra(cursor)
        return records

    def records_and_extra(
        self, cursor: CursorWrapper
    ) -> tuple[list[TaskRecord], list[tuple[Any, ...]]]:
        """Rows of conveyor_task as TaskRecords, and per row the values of any further
        columns (not conveyor_task's) that the statement selected after them."""
        names = [column[0] for column in cursor.description]
        by_column = {f.column: f for f in TaskRecord._meta.concrete_fields}
        fields = [by_column[name] for name in names if name in by_column]
        connection = self.connection
        compiler = connection.ops.compiler("SQLCompiler")(
            TaskRecord.objects.none().query, connection, self.using
        )
        converters = compiler.get_converters([f.get_col(TaskRecord._meta.db_table) for f in fields])
        rows = cursor.fetchall()
        width = len(fields)
        task_rows: Iterable[Sequence[Any]] = [row[:width] for row in rows]
        if converters:
            task_rows = compiler.apply_converters(task_rows, converters)
        # Model.from_db takes values in the model's field order, which need not be the table's
        # column order (a column added by a migration comes last in the table).
        position = {f.attname: i for i, f in enumerate(fields)}
        attnames = [f.attname for f in TaskRecord._meta.concrete_fields if f.attname in position]
        order = [position[name] for name in attnames]
        build = self.builder(attnames)
        records = [build([row[i] for i in order]) for row in task_rows]
        return records, [tuple(row[width:]) for row in rows]

    def builder(self, attnames: list[str]) -> Callable[[list[Any]], TaskRecord]:
        """Model.from_db, or, when no one listens to TaskRecord's pre_init and post_init
        signals, the same instance built without __init__ (a claim builds one per row)."""
        using = self.using
        if pre_init.has_listeners(TaskRecord) or post_init.has_listeners(TaskRecord):
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
