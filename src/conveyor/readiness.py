"""Whether the database holds conveyor's tables as this version expects: a missing migration
is a set-up error to report at once, not an outage to wait out."""

from __future__ import annotations

from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from conveyor.exceptions import ConveyorError


class NotMigrated(ConveyorError):
    """conveyor's tables are missing or out of date: run manage.py migrate."""


def unapplied_migrations(using: str) -> list[str]:
    """conveyor's migrations not yet applied to the database behind `using`."""
    executor = MigrationExecutor(connections[using])
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] == "conveyor"]
    return [
        migration.name
        for migration, backwards in executor.migration_plan(targets)
        if migration.app_label == "conveyor" and not backwards
    ]


def require_migrated(using: str) -> None:
    """Raise NotMigrated naming what to run, when conveyor's migrations are not all applied."""
    missing = unapplied_migrations(using)
    if missing:
        raise NotMigrated(
            f"conveyor's tables are missing or out of date on database {using!r} "
            f"(unapplied: {', '.join(missing)}): run manage.py migrate"
        )
