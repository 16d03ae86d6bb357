"""A task's attempts and errors go with it in the database from Django 6.1 on.

Django 6.1 writes ON DELETE CASCADE into the foreign keys of `conveyor_attempt` and
`conveyor_error` (`DB_CASCADE`) and leaves those deletes to the database; on older Djangos
the same migrations make plain foreign keys and Django deletes the rows itself. A project that
moves to Django 6.1 runs `migrate`, as after every upgrade: with nothing of conveyor's to
apply, it gives those foreign keys their ON DELETE CASCADE here, once.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from django.db import connections, models

from conveyor.compat import DB_CASCADE

logger = logging.getLogger(__name__)

type Key = models.ForeignKey[Any, Any]


def cascade_in_database(*, using: str, **kwargs: Any) -> None:
    """After `migrate`: on Django 6.1 and later, make the foreign keys of attempts and errors
    ON DELETE CASCADE where an older Django created them plain."""
    if DB_CASCADE is models.CASCADE:
        return  # before Django 6.1: Django deletes them itself
    from conveyor.models import Attempt, Error

    for model, name in ((Attempt, "task"), (Error, "attempt")):
        field = model._meta.get_field(name)
        assert isinstance(field, models.ForeignKey)
        if missing_cascade(using, model, field):
            recreate_with_cascade(using, model, field)


def missing_cascade(
    using: str, model: type[models.Model], field: models.ForeignKey[Any, Any]
) -> bool:
    connection = connections[using]
    with connection.cursor() as cursor:
        if model._meta.db_table not in connection.introspection.table_names(cursor):
            return False
        relations = connection.introspection.get_relations(cursor, model._meta.db_table)
    found = relations.get(field.attname if field.column is None else field.column)
    if found is None:
        return False
    *_, on_delete = found  # Django 6.1 reports the foreign key's ON DELETE last
    return on_delete is not DB_CASCADE


def recreate_with_cascade(
    using: str, model: type[models.Model], field: models.ForeignKey[Any, Any]
) -> None:
    plain = copy.copy(field)
    plain.remote_field = copy.copy(field.remote_field)
    plain.remote_field.on_delete = models.CASCADE
    with connections[using].schema_editor() as editor:
        editor.alter_field(model, plain, field)
    logger.info(
        "Foreign key table=%s column=%s on_delete=CASCADE", model._meta.db_table, field.column
    )
