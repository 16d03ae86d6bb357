"""Maintenance chores that one live worker at a time runs, under a named lease.

Every worker's maintenance thread asks now and then; the one that holds the chore's lease
does the work, the others skip. The lease is judged on the database clock and outlives the
gap between the holder's runs, so a live holder keeps it and a dead or stalled one lets
another worker take over once it expires. A run stops at its budget, so that recovery on
the same thread is never held up for long; a backlog continues at once on the next tick.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from conveyor.store import Engine


class NamedLease:
    """One named lease held by `holder`, taken and renewed through the store."""

    def __init__(self, store: Engine, name: str, holder: str, duration: timedelta) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.duration = duration

    def take(self) -> bool:
        """Take the lease if it is free, expired or already ours; report whether we hold it."""
        return self.store.take_lease(self.name, holder=self.holder, duration=self.duration)

    def renew(self) -> bool:
        """Extend the lease if we still hold it and it has not expired."""
        return self.store.renew_lease(self.name, holder=self.holder, duration=self.duration)


class LeasedChore:
    """The schedule, budget and lease of one chore (`name`, per backend)."""

    def __init__(
        self,
        store: Engine,
        worker_id: str,
        *,
        stopping: threading.Event,
        name: str,
        every_heartbeats: int,
        budget: timedelta,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.stopping = stopping
        options = store.options
        self.interval = options.heartbeat_interval * every_heartbeats
        self.budget = min(budget, options.heartbeat_interval / 2)
        self.lease = NamedLease(
            store,
            f"{name}:{store.backend_name}",
            worker_id,
            # Outlives the gap between the holder's runs, so a live holder keeps it.
            options.worker_timeout + self.interval,
        )
        self._next_run = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next_run

    def ran(self, *, backlog: bool) -> None:
        """Schedule the next run: at once while a backlog remains, else after the interval."""
        wait = 0.0 if backlog else self.interval.total_seconds()
        self._next_run = time.monotonic() + wait

    def deadline(self) -> float:
        """When a run starting now must stop (time.monotonic())."""
        return time.monotonic() + self.budget.total_seconds()
