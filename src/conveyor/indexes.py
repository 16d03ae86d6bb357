"""An index with a condition where the database has partial indexes, and whole elsewhere."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.ddl_references import Statement
from django.db.models import Q


class PartialIndex(models.Index):
    """Holds only the rows that match `where` on PostgreSQL and SQLite; all rows on MariaDB
    and MySQL, which have no partial indexes (Django would leave out a conditional index
    there with a warning, and the claim would have none).

    A row version that does not match adds no entry to the index: a task leaving READY is
    not written to the claim's indexes. Queries must repeat the condition with its values
    written in the statement, so that the planner can prove it."""

    def __init__(self, *args: Any, where: Q, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.where = where

    def deconstruct(self) -> Any:
        path, expressions, kwargs = super().deconstruct()
        kwargs["where"] = self.where
        return path, expressions, kwargs

    def create_sql(
        self,
        model: type[models.Model],
        schema_editor: BaseDatabaseSchemaEditor,
        using: str = "",
        **kwargs: Any,
    ) -> Statement:
        if not schema_editor.connection.features.supports_partial_indexes:
            return super().create_sql(model, schema_editor, using, **kwargs)
        _, expressions, options = super().deconstruct()
        partial = models.Index(*expressions, condition=self.where, **options)
        return partial.create_sql(model, schema_editor, using, **kwargs)
