"""The portable engine: what every database shares, in SQL that SQLite and MariaDB/MySQL
both speak. Engines subclass it and override its hooks where their database does better:
`claim_rows` (always), `insert_batch`, `write_outcomes`, `write_transaction`,
`is_transient`, `wakeup_source`, `wake_workers`, `queues_changed`, `insert_tick_sql` and
`merged_metadata_sql`."""

from __future__ import annotations

from conveyor.store.actions import Actions
from conveyor.store.leases import Leases
from conveyor.store.metadata import Metadata
from conveyor.store.paused import PausedQueues
from conveyor.store.reads import Reads
from conveyor.store.registry import Registry
from conveyor.store.retention import Retention
from conveyor.store.rollup import Rollup
from conveyor.store.schedules import Schedules


class PortableEngine(
    PausedQueues, Registry, Actions, Leases, Retention, Rollup, Reads, Schedules, Metadata
):
    """Task state for one backend on one database (see conveyor.store.engine.Engine)."""
