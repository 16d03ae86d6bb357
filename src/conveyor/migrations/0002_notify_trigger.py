"""On PostgreSQL, notify listening workers when tasks are inserted (no-op elsewhere)."""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

# One notification per INSERT statement, sent on commit: a bulk insert wakes workers once,
# and a rolled-back insert wakes nobody.
CREATE = (
    """
    CREATE OR REPLACE FUNCTION conveyor_notify_tasks() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('conveyor_tasks', '');
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER conveyor_task_notify AFTER INSERT ON conveyor_task
        FOR EACH STATEMENT EXECUTE FUNCTION conveyor_notify_tasks()
    """,
)

DROP = (
    "DROP TRIGGER IF EXISTS conveyor_task_notify ON conveyor_task",
    "DROP FUNCTION IF EXISTS conveyor_notify_tasks()",
)


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement, params=None)


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("conveyor", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
