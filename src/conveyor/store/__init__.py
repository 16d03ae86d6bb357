"""The task store: every change of a task's state, one engine per database."""

from __future__ import annotations

from conveyor.conf import BackendOptions
from conveyor.store.base import NewTask, Outcome, QueueFilter, TaskStore, Written
from conveyor.store.mysql import MySQLStore
from conveyor.store.postgresql import PostgreSQLStore
from conveyor.store.sqlite import SQLiteStore

ENGINES: dict[str, type[TaskStore]] = {
    engine.vendor: engine for engine in (PostgreSQLStore, MySQLStore, SQLiteStore)
}


def store_for(*, backend_name: str, options: BackendOptions, using: str) -> TaskStore:
    """The store engine for the database behind `using`."""
    from django.db import connections

    vendor = connections[using].vendor
    try:
        engine = ENGINES[vendor]
    except KeyError:
        raise NotImplementedError(
            f"conveyor supports PostgreSQL, MariaDB/MySQL and SQLite, not {vendor!r}"
        ) from None
    return engine(backend_name=backend_name, options=options, using=using)


__all__ = ["NewTask", "Outcome", "QueueFilter", "TaskStore", "Written", "store_for"]
