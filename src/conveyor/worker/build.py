"""Assemble a worker from its parts."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from conveyor.store import Engine
from conveyor.worker.announce import Announcer
from conveyor.worker.cancels import CancelWatch
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.identity import Identity
from conveyor.worker.listener import CancelListener, Listener
from conveyor.worker.loop import Worker, WorkerParts, WorkerSettings
from conveyor.worker.maintenance import Maintenance
from conveyor.worker.outcomes import OutcomeBuffer
from conveyor.worker.pool import THREAD, ExecutionPool, TimeoutOf, no_timeout
from conveyor.worker.scheduler import Planned, Scheduler


def build_worker(
    store: Engine,
    identity: Identity,
    settings: WorkerSettings,
    planned: Mapping[str, Planned] | None = None,
    *,
    timeout_of: TimeoutOf = no_timeout,
    isolation: str = THREAD,
) -> Worker:
    """A worker for one backend's store, with every part it runs: with `planned` schedules,
    it enqueues their ticks too; `timeout_of` says how long one attempt of a task may run
    (the backend's policies), `isolation` where sync tasks run (threads, or a child process
    per slot)."""
    wakeup = threading.Event()
    health = DatabaseHealth()
    outcomes = OutcomeBuffer(on_added=wakeup.set)
    announcer = Announcer(store)
    source = store.wakeup_source()
    pool = ExecutionPool(
        settings.concurrency,
        outcomes.add,
        async_concurrency=settings.async_concurrency,
        timeout_of=timeout_of,
        isolation=isolation,
    )
    heartbeat = Heartbeat(
        store,
        identity,
        settings.queues,
        health,
        cancels=CancelWatch(store, identity.worker_id, pool),
    )
    cancel_source = store.cancel_source()
    parts = WorkerParts(
        store=store,
        identity=identity,
        wakeup=wakeup,
        health=health,
        pool=pool,
        outcomes=outcomes,
        announcer=announcer,
        heartbeat=heartbeat,
        maintenance=Maintenance(
            store, identity.worker_id, on_written=announcer.announce, health=health
        ),
        listener=None if source is None else Listener(source, wakeup.set),
        scheduler=Scheduler(store, planned, health) if planned else None,
        cancel_listener=(
            None if cancel_source is None else CancelListener(cancel_source, heartbeat.look_now)
        ),
    )
    return Worker(parts, settings)
