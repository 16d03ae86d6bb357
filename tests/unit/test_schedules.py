"""Schedules and their ticks, on a fake clock: parsing, intervals, cron in a time zone
(daylight saving included), and what a starting or held-up worker enqueues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured

from conveyor.conf import parse_options
from conveyor.schedules import CatchUp, Schedule, parse_schedule
from conveyor.worker.scheduler import Timetable, missed

BRUSSELS = ZoneInfo("Europe/Brussels")


def at(*fields: int) -> datetime:
    year, month, day, *rest = fields
    return datetime(year, month, day, *rest, tzinfo=UTC)  # type: ignore[arg-type, misc]


def schedule(**spec: Any) -> Schedule:
    return parse_schedule("s", {"task": "tests.tasksapp.tasks.noop", **spec}, where="p['s']")


def local(ticks: list[datetime]) -> list[str]:
    return [tick.astimezone(BRUSSELS).strftime("%m-%d %H:%M %Z") for tick in ticks]


def test_interval_ticks_are_multiples_of_the_interval_since_the_epoch() -> None:
    every = schedule(every="30 seconds")
    assert every.next_tick(at(2026, 1, 1, 12, 0, 10)) == at(2026, 1, 1, 12, 0, 30)
    assert every.next_tick(at(2026, 1, 1, 12, 0, 30)) == at(2026, 1, 1, 12, 1, 0)
    assert every.latest_tick(at(2026, 1, 1, 12, 0, 30)) == at(2026, 1, 1, 12, 0, 30)
    assert every.ticks_between(at(2026, 1, 1, 12), at(2026, 1, 1, 12, 1, 30)) == [
        at(2026, 1, 1, 12, 0, 30),
        at(2026, 1, 1, 12, 1, 0),
        at(2026, 1, 1, 12, 1, 30),
    ]


def test_cron_ticks_follow_the_schedules_time_zone() -> None:
    nightly = schedule(cron="0 3 * * *", timezone="Europe/Brussels")
    # 03:00 in Brussels is 02:00 UTC in winter.
    assert nightly.next_tick(at(2026, 1, 10, 12)) == at(2026, 1, 11, 2)
    assert nightly.latest_tick(at(2026, 1, 11, 2)) == at(2026, 1, 11, 2)
    assert nightly.latest_tick(at(2026, 1, 11, 1, 59)) == at(2026, 1, 10, 2)


def test_daylight_saving_follows_debian_cron_as_cronsim_documents() -> None:
    half_past_two = schedule(cron="30 2 * * *", timezone="Europe/Brussels")
    # Spring: 02:00-03:00 does not exist on 29 March; the job runs at once, at 03:00.
    spring = half_past_two.ticks_between(at(2026, 3, 27, 12), at(2026, 3, 30, 12))
    assert local(spring) == ["03-28 02:30 CET", "03-29 03:00 CEST", "03-30 02:30 CEST"]
    # Autumn: 02:30 happens twice on 25 October; the job runs once, at the first.
    autumn = half_past_two.ticks_between(at(2026, 10, 24, 12), at(2026, 10, 26, 12))
    assert local(autumn) == ["10-25 02:30 CEST", "10-26 02:30 CET"]
    # The timetable steps from tick to tick: the same ticks.
    stepped = [half_past_two.next_tick(at(2026, 3, 27, 12))]
    while len(stepped) < 3:
        stepped.append(half_past_two.next_tick(stepped[-1]))
    assert stepped == spring
    assert half_past_two.next_tick(autumn[0]) == autumn[1]
    # A job more frequent than hourly is scheduled normally: nothing in the lost hour.
    quarterly = schedule(cron="*/30 * * * *", timezone="Europe/Brussels")
    lost = quarterly.ticks_between(at(2026, 3, 29, 0, 15), at(2026, 3, 29, 1, 45))
    assert local(lost) == ["03-29 01:30 CET", "03-29 03:00 CEST", "03-29 03:30 CEST"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (CatchUp.NONE, []),
        (CatchUp.LATEST, [at(2026, 1, 1, 5)]),
        (CatchUp.ALL, [at(2026, 1, 1, hour) for hour in (3, 4, 5)]),
    ],
)
def test_a_starting_worker_catches_up_missed_ticks_per_policy(
    policy: CatchUp, expected: list[datetime]
) -> None:
    hourly = schedule(every="1 hour", catch_up=policy.value)
    assert missed(hourly, at(2026, 1, 1, 5, 30), last=at(2026, 1, 1, 2)) == expected


def test_catch_up_stays_within_the_window_and_after_the_last_tick() -> None:
    hourly = schedule(every="1 hour", catch_up="all", catch_up_window="2 hours")
    now = at(2026, 1, 1, 5, 30)
    assert missed(hourly, now, last=None) == [at(2026, 1, 1, 4), at(2026, 1, 1, 5)]
    assert missed(hourly, now, last=at(2026, 1, 1, 5)) == []
    latest = schedule(every="1 hour", catch_up_window="10 minutes")
    assert missed(latest, now, last=None) == []  # 05:00 is older than the window


def test_the_timetable_fires_each_tick_once_as_the_clock_passes_it() -> None:
    table = Timetable({"s": schedule(every="10 seconds", catch_up="none")})
    assert table.start(at(2026, 1, 1, 0, 0, 5), {}) == []
    assert table.next_tick() == at(2026, 1, 1, 0, 0, 10)
    assert table.due(at(2026, 1, 1, 0, 0, 9)) == []
    assert table.due(at(2026, 1, 1, 0, 0, 10)) == [("s", at(2026, 1, 1, 0, 0, 10))]
    assert table.due(at(2026, 1, 1, 0, 0, 10)) == []
    assert table.next_tick() == at(2026, 1, 1, 0, 0, 20)


@pytest.mark.parametrize(("policy", "count"), [("none", 1), ("latest", 1), ("all", 3)])
def test_a_held_up_timetable_applies_the_catch_up_policy(policy: str, count: int) -> None:
    table = Timetable({"s": schedule(every="10 seconds", catch_up=policy)})
    table.start(at(2026, 1, 1, 0, 0, 5), {"s": at(2026, 1, 1, 0, 0, 0)})
    due = table.due(at(2026, 1, 1, 0, 0, 31))
    assert [tick for _, tick in due][-1] == at(2026, 1, 1, 0, 0, 30)
    assert len(due) == count
    assert table.next_tick() == at(2026, 1, 1, 0, 0, 40)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cron": "0 3 * *"}, "periodic['nightly']['cron']: '0 3 * *' is not a cron expression"),
        (
            {"cron": "0 3 * * *", "timezone": "Europe/Atlantis"},
            "periodic['nightly']['timezone']: unknown time zone 'Europe/Atlantis'",
        ),
        ({"every": "often"}, "periodic['nightly']['every']: cannot read 'often' as a duration"),
        ({"cron": "* * * * *", "every": 5}, "periodic['nightly']: give exactly one of"),
        (
            {"every": 5, "kwargs": {"when": datetime(2026, 1, 1)}},
            "periodic['nightly']['kwargs']: must be JSON",
        ),
        ({"every": 5, "catch_up": "some"}, "periodic['nightly']['catch_up']: must be 'none'"),
        ({"every": 5, "queue_name": "nowhere"}, "periodic['nightly']['queue_name']: queue is not"),
        ({"every": 5, "at": "03:00"}, "periodic['nightly']: unknown key 'at'"),
    ],
)
def test_a_wrong_schedule_is_one_error_naming_it(spec: dict[str, Any], message: str) -> None:
    periodic = {"nightly": {"task": "tests.tasksapp.tasks.noop", **spec}}
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_options("default", {"periodic": periodic}, frozenset({"default"}))
    assert str(raised.value).startswith(f"TASKS['default'] OPTIONS {message}")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("tests.tasksapp.nowhere.job", "cannot import 'tests.tasksapp.nowhere.job'"),
        ("tests.tasksapp.tasks.Execution", "is not a django.tasks task (use @task)"),
    ],
)
def test_the_system_check_names_a_schedule_whose_task_does_not_resolve(
    task_options: Any, task: str, message: str
) -> None:
    backend = task_options(periodic={"nightly": {"task": task, "cron": "0 3 * * *"}})
    [error] = backend.check()
    assert error.id == "conveyor.E002"
    assert error.msg.startswith("TASKS['default'] OPTIONS periodic['nightly']['task']: ")
    assert message in error.msg


def test_the_system_check_names_arguments_the_task_does_not_take(task_options: Any) -> None:
    backend = task_options(
        periodic={"sum": {"task": "tests.tasksapp.tasks.add", "every": 60, "args": [1]}}
    )
    [error] = backend.check()
    assert "periodic['sum']: tests.tasksapp.tasks.add(a, b): missing a required argument" in (
        error.msg
    )
    assert (
        task_options(
            periodic={"sum": {"task": "tests.tasksapp.tasks.add", "every": 60, "args": [1, 2]}}
        ).check()
        == []
    )


def test_schedules_describe_when_they_fire() -> None:
    assert schedule(every=90).describe() == "every 90 seconds"
    assert schedule(cron="0 3 * * *").describe() == "cron 0 3 * * * (UTC)"
    assert schedule(every=60).every == timedelta(minutes=1)
