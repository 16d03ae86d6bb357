"""Periodic tasks: a thread that sleeps until the next tick of any schedule, then asks the
store to enqueue it. Every worker runs one (unless started with --no-schedule); the store's
tick markers make each tick one task however many race for it, so none is "the" scheduler.

Times are the database's: the thread reads its clock at every wake-up and sleeps for the
distance to the next tick, so a host clock that is off moves no tick.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError

from conveyor.schedules import CatchUp, Schedule
from conveyor.store import Engine, NewTask
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.service import BackgroundThread

logger = logging.getLogger(__name__)

# The longest sleep between looks at the database clock (and at the schedules' ticks).
LONGEST_SLEEP = timedelta(seconds=30)
# After a database error, look again this soon (the catch-up then repeats the start's).
RETRY_AFTER = timedelta(seconds=1)
# Sleep this much past a tick, so that the clock read on waking is never just before it.
PAST_TICK = timedelta(milliseconds=2)


@dataclass(frozen=True, slots=True)
class Planned:
    """A schedule and the row each of its ticks inserts."""

    schedule: Schedule
    task: NewTask


class Timetable:
    """Which ticks of which schedules are due at a time of the database clock.

    `start` decides the catch-up of ticks missed while no worker ran (per schedule's
    catch_up, within its window); `due` then returns every tick that came since. Several
    ticks of one schedule due at once (the thread was held up) count as missed too:
    "all" enqueues each, "latest" and "none" the newest only.
    """

    def __init__(self, schedules: Mapping[str, Schedule]) -> None:
        self.schedules = schedules
        self._next: list[tuple[datetime, str]] = []

    def start(self, now: datetime, last: Mapping[str, datetime]) -> list[tuple[str, datetime]]:
        """The missed ticks to enqueue now, given each schedule's last enqueued tick."""
        self._next = []
        due = []
        for name, schedule in self.schedules.items():
            due += [(name, tick) for tick in missed(schedule, now, last.get(name))]
            self._next.append((schedule.next_tick(now), name))
        heapq.heapify(self._next)
        return due

    def due(self, now: datetime) -> list[tuple[str, datetime]]:
        """The ticks that came since the last call, oldest schedule first."""
        due = []
        while self._next and self._next[0][0] <= now:
            tick, name = heapq.heappop(self._next)
            schedule = self.schedules[name]
            ticks = [tick, *schedule.ticks_between(tick, now)]
            ticks = [t for t in ticks if t >= now - schedule.catch_up_window] or ticks[-1:]
            if schedule.catch_up != CatchUp.ALL:
                ticks = ticks[-1:]
            due += [(name, t) for t in ticks]
            heapq.heappush(self._next, (schedule.next_tick(ticks[-1]), name))
        return due

    def next_tick(self) -> datetime | None:
        """The next tick of any schedule."""
        return self._next[0][0] if self._next else None


def missed(schedule: Schedule, now: datetime, last: datetime | None) -> list[datetime]:
    """The ticks a starting worker enqueues for a schedule whose last tick was `last`."""
    oldest = now - schedule.catch_up_window
    if schedule.catch_up == CatchUp.NONE:
        return []
    if schedule.catch_up == CatchUp.LATEST:
        latest = schedule.latest_tick(now)
        if latest is None or latest < oldest or (last is not None and latest <= last):
            return []
        return [latest]
    after = oldest if last is None else max(last, oldest)
    return schedule.ticks_between(after, now)


class Scheduler(BackgroundThread):
    """Enqueues the ticks of the backend's schedules as they come, in its own thread."""

    thread_name = "conveyor-scheduler"

    def __init__(
        self, store: Engine, planned: Mapping[str, Planned], health: DatabaseHealth
    ) -> None:
        super().__init__()
        self.store = store
        self.planned = planned
        self.health = health
        self.timetable = Timetable({name: p.schedule for name, p in planned.items()})

    def run(self) -> None:
        started = False
        while True:
            try:
                now = self.store.database_now()
                if not started:
                    last = {t.schedule_name: t.tick for t in self.store.last_ticks()}
                    self.enqueue(self.timetable.start(now, last))
                    started = True
                else:
                    self.enqueue(self.timetable.due(now))
                delay = self.sleep_after(self.store.database_now())
            except Exception as exc:
                # Ticks that came meanwhile are caught up, per schedule, a second later. An
                # error that is not an outage (a bug) is said loudly and caught up the same
                # way: an ended thread would enqueue no schedule of this worker again.
                if isinstance(exc, DatabaseError | InterfaceError):
                    self.health.failed()
                    logger.debug("Scheduler failed, will catch up: %s", exc)
                else:
                    logger.exception("Scheduler failed, will catch up")
                started = False
                self.store.reset_connection()
                delay = RETRY_AFTER.total_seconds()
            if self.stopping.wait(delay):
                return

    def sleep_after(self, now: datetime) -> float:
        """How long to sleep from `now` (the database clock) to just past the next tick."""
        tick = self.timetable.next_tick()
        if tick is None:
            return LONGEST_SLEEP.total_seconds()
        until = tick - now + PAST_TICK
        return max(0.0, min(until, LONGEST_SLEEP).total_seconds())

    def enqueue(self, due: list[tuple[str, datetime]]) -> None:
        for name, tick in due:
            if self.stopping.is_set():
                return
            planned = self.planned[name]
            pk = self.store.enqueue_tick(
                planned.task,
                schedule_name=name,
                tick=tick,
                window=planned.schedule.catch_up_window,
            )
            if pk is None:
                logger.debug(
                    "Tick schedule=%s tick=%s was already enqueued", name, tick.isoformat()
                )
