"""Periodic tasks: OPTIONS["periodic"] parsed into schedules, and the ticks they fire at.

A tick is a point in time a schedule fires at, the same on every worker: cron ticks come
from cronsim in the schedule's time zone, interval ticks are whole multiples of the interval
since the Unix epoch. Nothing here reads the database; the scheduler thread
(conveyor.worker.scheduler) asks the store to enqueue each tick exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conveyor import durations
from conveyor.columns import QUEUE_NAME_MAX_LENGTH, SCHEDULE_NAME_MAX_LENGTH

DEFAULT_CATCH_UP_WINDOW = timedelta(days=1)
# A catch-up of policy "all" enqueues at most this many of the most recent missed ticks.
MAX_CATCH_UP_TICKS = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SCHEDULE_KEYS = frozenset(
    {
        "task",
        "cron",
        "every",
        "timezone",
        "args",
        "kwargs",
        "priority",
        "queue_name",
        "catch_up",
        "catch_up_window",
    }
)


class CatchUp(StrEnum):
    """What a starting worker does with the ticks missed while no worker ran."""

    NONE = "none"  # skip them
    LATEST = "latest"  # run the most recent one once
    ALL = "all"  # run each, within the window


class ScheduleError(ValueError):
    """A schedule's settings are wrong: `where` names the schedule and key."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True, slots=True)
class Schedule:
    """One entry of OPTIONS["periodic"]: what to enqueue, and when."""

    name: str
    task_path: str
    cron: str | None = None
    every: timedelta | None = None
    timezone: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    priority: int | None = None
    queue_name: str | None = None
    catch_up: CatchUp = CatchUp.LATEST
    catch_up_window: timedelta = DEFAULT_CATCH_UP_WINDOW

    def describe(self) -> str:
        """When it fires, as people write it: 'cron 0 3 * * * (Europe/Brussels)'."""
        if self.every is not None:
            return f"every {durations.describe(self.every)}"
        return f"cron {self.cron} ({self.timezone})"

    def ticks_after(self, after: datetime) -> Iterator[datetime]:
        """The ticks strictly after `after`, in order, as aware UTC datetimes."""
        if self.every is not None:
            step = self.every
            count = (after - EPOCH) // step + 1
            while True:
                yield EPOCH + step * count
                count += 1
        from cronsim import CronSim

        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        for tick in CronSim(self.cron, after.astimezone(zone)):
            if tick > after:  # strictly after, compared as instants (not wall-clock times)
                yield tick.astimezone(UTC)

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after `after`."""
        return next(self.ticks_after(after))

    def latest_tick(self, at: datetime) -> datetime | None:
        """The last tick at or before `at` (None if there is none within a year)."""
        if self.every is not None:
            return EPOCH + self.every * ((at - EPOCH) // self.every)
        from cronsim import CronSim

        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        # cronsim's reverse iteration starts strictly before its start: begin just after.
        start = (at + timedelta(microseconds=1)).astimezone(zone)
        for tick in CronSim(self.cron, start, reverse=True):
            return tick.astimezone(UTC)
        return None  # pragma: no cover - cronsim raises rather than ends

    def ticks_between(self, after: datetime, until: datetime) -> list[datetime]:
        """The ticks in (after, until], oldest first, at most MAX_CATCH_UP_TICKS (the
        newest)."""
        found: list[datetime] = []
        for tick in self.ticks_after(after):
            if tick > until:
                break
            found.append(tick)
            if len(found) > MAX_CATCH_UP_TICKS:
                del found[0]
        return found


def parse_schedules(value: object, *, where: str) -> dict[str, Schedule]:
    """Validate OPTIONS["periodic"]; raise ScheduleError naming the schedule and key.

    Checks the form of each schedule (cron, time zone, interval, JSON arguments); whether
    its task imports is checked once the app registry is ready (see conveyor.checks)."""
    if not isinstance(value, Mapping):
        raise ScheduleError(where, f"must be a dict of schedules, got {type(value).__name__}")
    return {
        name: parse_schedule(name, spec, where=f"{where}[{name!r}]") for name, spec in value.items()
    }


def parse_schedule(name: object, spec: object, *, where: str) -> Schedule:
    if not isinstance(name, str) or not name or len(name) > SCHEDULE_NAME_MAX_LENGTH:
        raise ScheduleError(
            where,
            f"a schedule's name must be a string of 1 to {SCHEDULE_NAME_MAX_LENGTH} characters",
        )
    if not isinstance(spec, Mapping):
        raise ScheduleError(where, f"must be a dict, got {type(spec).__name__}")
    unknown = set(spec) - SCHEDULE_KEYS
    if unknown:
        raise ScheduleError(
            where,
            f"unknown key {sorted(unknown)[0]!r} "
            f"(expected one of {', '.join(sorted(SCHEDULE_KEYS))})",
        )
    task = spec.get("task")
    if not isinstance(task, str) or not task:
        raise ScheduleError(where, f"'task' must be the dotted path of a task, got {task!r}")
    return Schedule(
        name=name,
        task_path=task,
        **timing(spec, where),
        **arguments(spec, where),
        priority=optional_int(spec, "priority", where),
        queue_name=queue_name(spec, where),
        catch_up=catch_up(spec, where),
        catch_up_window=window(spec, where),
    )


def timing(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """cron (with its time zone) or every, exactly one of them."""
    if ("cron" in spec) == ("every" in spec):
        raise ScheduleError(where, "give exactly one of 'cron' and 'every'")
    if "every" in spec:
        if "timezone" in spec:
            raise ScheduleError(where, "'timezone' applies to 'cron' schedules only")
        try:
            every = durations.parse(spec["every"])
        except ValueError as exc:
            raise ScheduleError(f"{where}['every']", f"{exc}") from None
        if every < timedelta(seconds=1):
            raise ScheduleError(f"{where}['every']", f"must be at least 1 second, got {every}")
        return {"every": every}
    zone = spec.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"{where}['timezone']", f"unknown time zone {zone!r}") from None
    return {"cron": cron_expression(spec["cron"], where), "timezone": zone}


def cron_expression(expression: object, where: str) -> str:
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise ScheduleError(f"{where}['cron']", "needs the 'cronsim' package") from None
    if not isinstance(expression, str):
        raise ScheduleError(f"{where}['cron']", f"must be a string, got {expression!r}")
    try:
        CronSim(expression, datetime.now(UTC))
    except CronSimError as exc:
        message = f"{expression!r} is not a cron expression: {exc}"
        raise ScheduleError(f"{where}['cron']", message) from None
    return expression


def arguments(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    args, kwargs = spec.get("args", []), spec.get("kwargs", {})
    if not isinstance(args, list | tuple):
        raise ScheduleError(f"{where}['args']", f"must be a list, got {type(args).__name__}")
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise ScheduleError(f"{where}['kwargs']", "must be a dict with string keys")
    for key, value in (("args", args), ("kwargs", kwargs)):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ScheduleError(f"{where}[{key!r}]", f"must be JSON: {exc}") from None
    return {"args": tuple(args), "kwargs": dict(kwargs)}


def optional_int(spec: Mapping[str, Any], key: str, where: str) -> int | None:
    value = spec.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ScheduleError(f"{where}[{key!r}]", f"must be an integer, got {value!r}")
    return value


def queue_name(spec: Mapping[str, Any], where: str) -> str | None:
    value = spec.get("queue_name")
    if value is not None and (not isinstance(value, str) or len(value) > QUEUE_NAME_MAX_LENGTH):
        raise ScheduleError(f"{where}['queue_name']", f"must be a queue name, got {value!r}")
    return value


def catch_up(spec: Mapping[str, Any], where: str) -> CatchUp:
    value = spec.get("catch_up", CatchUp.LATEST.value)
    try:
        return CatchUp(value)
    except ValueError:
        raise ScheduleError(
            f"{where}['catch_up']", f"must be 'none', 'latest' or 'all', got {value!r}"
        ) from None


def window(spec: Mapping[str, Any], where: str) -> timedelta:
    try:
        found = durations.parse(spec.get("catch_up_window", DEFAULT_CATCH_UP_WINDOW))
    except ValueError as exc:
        raise ScheduleError(f"{where}['catch_up_window']", f"{exc}") from None
    if found <= timedelta(0):
        raise ScheduleError(f"{where}['catch_up_window']", "must be longer than zero")
    return found
