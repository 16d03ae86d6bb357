"""The store: the only code that reads or writes conveyor's tables, one engine per database.

The interface is `Engine` (engine.py); engines are postgresql.py, mysql.py and sqlite.py, on
the shared base in portable.py. The values that cross the boundary are in values.py.
"""

from __future__ import annotations

from conveyor.conf import BackendOptions
from conveyor.store.engine import Engine, WakeupSource
from conveyor.store.mysql import MySQLEngine
from conveyor.store.portable import PortableEngine
from conveyor.store.postgresql import PostgreSQLEngine
from conveyor.store.sqlite import SQLiteEngine
from conveyor.store.values import (
    Activity,
    Applied,
    DueCount,
    Gauges,
    LastTick,
    NewTask,
    Outcome,
    QueueCount,
    QueueFilter,
    RateState,
    RetryDecider,
    SlotState,
    WaitCounts,
    Written,
)

ENGINES: dict[str, type[PortableEngine]] = {
    engine.vendor: engine for engine in (PostgreSQLEngine, MySQLEngine, SQLiteEngine)
}


def store_for(
    *,
    backend_name: str,
    options: BackendOptions,
    using: str,
    decider: RetryDecider | None = None,
) -> Engine:
    """The engine for the database behind `using`; `decider` decides retries (by default,
    by the queue's options alone)."""
    from django.db import connections

    vendor = connections[using].vendor
    try:
        engine = ENGINES[vendor]
    except KeyError:
        raise NotImplementedError(
            f"conveyor supports PostgreSQL, MariaDB/MySQL and SQLite, not {vendor!r}"
        ) from None
    return engine(backend_name=backend_name, options=options, using=using, decider=decider)


__all__ = [
    "Activity",
    "Applied",
    "DueCount",
    "Engine",
    "Gauges",
    "LastTick",
    "NewTask",
    "Outcome",
    "QueueCount",
    "QueueFilter",
    "RateState",
    "RetryDecider",
    "SlotState",
    "WaitCounts",
    "WakeupSource",
    "Written",
    "store_for",
]
