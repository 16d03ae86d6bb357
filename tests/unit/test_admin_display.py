from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.admin import display

NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 ms"),
        (0.007, "7 ms"),
        (0.9994, "999 ms"),
        (1, "1 s"),
        (2.34, "2.3 s"),
        (9.96, "10 s"),
        (42.4, "42 s"),
        (60, "1 min"),
        (65, "1 min 5 s"),
        (3599, "59 min 59 s"),
        (7500, "2 h 5 min"),
        (3 * 86400 + 4 * 3600 + 59, "3 d 4 h"),
        (-0.5, "0 ms"),  # the clocks of two hosts disagree
    ],
)
def test_durations_read_in_at_most_two_units(seconds: float, text: str) -> None:
    assert display.duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(seconds=-5), "now"),
        (timedelta(0), "now"),
        (timedelta(milliseconds=200), "in 1 s"),
        (timedelta(seconds=40), "in 40 s"),
        (timedelta(hours=23, minutes=59, seconds=30), "in 23 h 59 min"),
        (timedelta(days=2), "in 2 d"),
    ],
)
def test_until_says_now_once_the_moment_has_come(offset: timedelta, text: str) -> None:
    assert display.until(NOON + offset, NOON) == text


@pytest.mark.parametrize(
    ("elapsed", "text"),
    [
        (timedelta(seconds=-1), "now"),
        (timedelta(milliseconds=400), "now"),
        (timedelta(seconds=45), "45 s ago"),
        (timedelta(minutes=3, seconds=2), "3 min 2 s ago"),
    ],
)
def test_ago(elapsed: timedelta, text: str) -> None:
    assert display.ago(elapsed) == text


def test_a_time_shows_seconds_and_wraps_between_date_and_time() -> None:
    html = display.time(datetime(2026, 11, 20, 8, 5, 9, 123456, tzinfo=UTC))
    assert html == (
        '<time datetime="2026-11-20T08:05:09.123456+00:00">'
        '<span class="conveyor-date">2026-11-20</span> <span>08:05:09</span></time>'
    )
    assert display.time(None) == "-"


def test_long_worker_ids_keep_both_ends() -> None:
    worker_id = "web-1.example.com-48213-Zq8LmP2x"
    assert display.shortened(worker_id, 16) == "web-1.ex…q8LmP2x"
    assert display.shortened("w1", 16) == "w1"
    assert display.with_tooltip(worker_id, 16) == (
        f'<span title="{worker_id}">web-1.ex…q8LmP2x</span>'
    )
    assert display.with_tooltip("", 16) == "-"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("emails.tasks.send", "emails.<wbr>tasks.<wbr>send"),
        ("tests.tasksapp.tasks.echo", "tests.<wbr>t.<wbr>tasks.<wbr>echo"),
        ("site.a_b.c_d.tasks.run", "site.<wbr>a.<wbr>c.<wbr>tasks.<wbr>run"),
        ("<x>.y.tasks.z", "&lt;x&gt;.<wbr>y.<wbr>tasks.<wbr>z"),
    ],
)
def test_task_paths_shrink_middle_packages_to_initials(path: str, shown: str) -> None:
    assert display.task_path(path) == shown


def test_badges_name_their_status_and_escape_an_unknown_one() -> None:
    assert display.badge("FAILED") == (
        '<span class="conveyor-badge conveyor-badge--failed">FAILED</span>'
    )
    assert display.badge("<b>") == (
        '<span class="conveyor-badge conveyor-badge--unknown">&lt;b&gt;</span>'
    )


def test_an_error_excerpt_is_the_last_line_of_the_traceback() -> None:
    traceback = 'Traceback (most recent call last):\n  File "x.py"\nValueError: boom\n\n'
    assert display.error_excerpt(traceback) == "ValueError: boom"
    assert display.error_excerpt("") == ""
    long = display.error_excerpt("RuntimeError: " + "x" * 500)
    assert len(long) == display.ERROR_EXCERPT_LENGTH
    assert long.endswith("…")


@pytest.mark.parametrize(
    ("line", "short"),
    [
        ("httpx.ConnectError: [Errno 111] refused", "ConnectError: [Errno 111] refused"),
        ("a.b.Stop", "Stop"),
        ("ValueError: in module a.b.c: no", "ValueError: in module a.b.c: no"),
        ("boom", "boom"),
    ],
)
def test_without_module_keeps_the_class_name(line: str, short: str) -> None:
    assert display.without_module(line) == short
