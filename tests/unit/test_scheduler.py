"""The scheduler thread on a fake database clock: it enqueues each tick as it comes, sleeps
until just past the next one, and catches up after a database error."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from django.db import InterfaceError, OperationalError

from conveyor.schedules import parse_schedule
from conveyor.store import Engine, LastTick, NewTask
from conveyor.worker.health import DatabaseHealth
from conveyor.worker.scheduler import PAST_TICK, Planned, Scheduler

START = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)


class FakeStore:
    """The engine operations the scheduler uses, on a clock the test moves."""

    def __init__(
        self,
        *,
        failures_at: set[int] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.now = START
        self.enqueued: list[tuple[str, datetime]] = []
        self.failures_at = failures_at or set()
        self.error = error or OperationalError("server closed the connection")
        self.reads = 0

    def database_now(self) -> datetime:
        self.reads += 1
        if self.reads in self.failures_at:
            raise self.error
        return self.now

    def last_ticks(self) -> list[LastTick]:
        ticks: dict[str, datetime] = {}
        for name, tick in self.enqueued:
            ticks[name] = max(tick, ticks.get(name, tick))
        return [LastTick(name, tick, 1, "READY") for name, tick in ticks.items()]

    def enqueue_tick(
        self, task: NewTask, *, schedule_name: str, tick: datetime, window: timedelta
    ) -> int | None:
        if (schedule_name, tick) in self.enqueued:
            return None
        self.enqueued.append((schedule_name, tick))
        return len(self.enqueued)

    def reset_connection(self) -> None:
        pass


class FakeStopping:
    """A stopping event whose waits move the fake clock instead of sleeping."""

    def __init__(self, store: FakeStore, waits: int) -> None:
        self.store = store
        self.left = waits
        self.delays: list[float] = []

    def wait(self, timeout: float) -> bool:
        self.delays.append(timeout)
        self.store.now += timedelta(seconds=timeout)
        self.left -= 1
        return self.left <= 0

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        pass


def run(store: FakeStore, waits: int, **spec: Any) -> FakeStopping:
    schedule = parse_schedule("s", {"task": "tests.tasksapp.tasks.noop", **spec}, where="p")
    task = cast("NewTask", object())
    scheduler = Scheduler(cast("Engine", store), {"s": Planned(schedule, task)}, DatabaseHealth())
    stopping = FakeStopping(store, waits)
    scheduler.stopping = stopping  # type: ignore[assignment]
    scheduler.run()
    return stopping


def at(seconds: int) -> datetime:
    return START.replace(second=0) + timedelta(seconds=seconds)


def test_it_catches_up_the_latest_tick_then_sleeps_until_just_past_each_next_one() -> None:
    store = FakeStore()
    stopping = run(store, 3, every=10)
    assert store.enqueued == [("s", at(0)), ("s", at(10)), ("s", at(20))]
    past = PAST_TICK.total_seconds()
    assert stopping.delays == [5 + past, 10, 10]


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (OperationalError("server closed the connection"), logging.DEBUG),
        (InterfaceError("connection already closed"), logging.DEBUG),
        (RuntimeError("a bug"), logging.ERROR),
    ],
    ids=["operational-error", "interface-error", "bug"],
)
def test_after_an_error_it_catches_up_per_policy(
    caplog: pytest.LogCaptureFixture, error: Exception, level: int
) -> None:
    # The tick at 0 was enqueued before; the clock read on waking for the tick at 10 fails:
    # the retry a second later starts over from the markers and enqueues the tick at 10.
    store = FakeStore(failures_at={3}, error=error)
    store.enqueued = [("s", at(0))]
    with caplog.at_level(logging.DEBUG, logger="conveyor"):
        stopping = run(store, 3, every=10, catch_up="all")
    assert store.enqueued == [("s", at(0)), ("s", at(10))]
    assert stopping.delays[1:] == [1.0, pytest.approx(9.0)]
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("Scheduler failed")]
    assert logged.levelno == level


def test_with_nothing_to_schedule_it_sleeps_the_longest_sleep() -> None:
    store = FakeStore()
    stopping = run(store, 1, cron="0 3 1 1 *", catch_up="none")
    assert store.enqueued == []
    assert stopping.delays == [30.0]
