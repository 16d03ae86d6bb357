"""Assemble a worker from its parts."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from conveyor.store import Engine
from conveyor.worker.announce import Announcer
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.identity import Identity
from conveyor.worker.listener import Listener
from conveyor.worker.loop import Worker, WorkerParts, WorkerSettings
from conveyor.worker.maintenance import Maintenance
from conveyor.worker.outcomes import OutcomeBuffer
from conveyor.worker.pool import ExecutionPool
from conveyor.worker.scheduler import Planned, Scheduler


def build_worker(
    store: Engine,
    identity: Identity,
    settings: WorkerSettings,
    planned: Mapping[str, Planned] | None = None,
) -> Worker:
    """A worker for one backend's store, with every part it runs; with `planned`
    schedules, it enqueues their ticks too."""
    wakeup = threading.Event()
    health = DatabaseHealth()
    outcomes = OutcomeBuffer(on_added=wakeup.set)
    announcer = Announcer(store)
    source = store.wakeup_source()
    parts = WorkerParts(
        store=store,
        identity=identity,
        wakeup=wakeup,
        health=health,
        pool=ExecutionPool(settings.concurrency, outcomes.add),
        outcomes=outcomes,
        announcer=announcer,
        heartbeat=Heartbeat(store, identity, settings.queues, health),
        maintenance=Maintenance(
            store, identity.worker_id, on_written=announcer.announce, health=health
        ),
        listener=None if source is None else Listener(source, wakeup.set),
        scheduler=Scheduler(store, planned, health) if planned else None,
    )
    return Worker(parts, settings)
