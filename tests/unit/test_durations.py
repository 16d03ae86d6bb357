from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor import durations


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(hours=2), timedelta(hours=2)),
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        ("10 days", timedelta(days=10)),
        ("1 day", timedelta(days=1)),
        ("3 hours", timedelta(hours=3)),
        ("45 minutes", timedelta(minutes=45)),
        ("30 seconds", timedelta(seconds=30)),
        ("2 weeks", timedelta(weeks=2)),
        ("P10D", timedelta(days=10)),
        ("PT12H", timedelta(hours=12)),
        ("1 02:00:00", timedelta(days=1, hours=2)),
        ("00:05:00", timedelta(minutes=5)),
        ("  7 Days ", timedelta(days=7)),
    ],
)
def test_accepted_forms(value: object, expected: timedelta) -> None:
    assert durations.parse(value) == expected


@pytest.mark.parametrize("value", ["ten days", "", "10 fortnights", None, True, [1], "-1 day"])
def test_rejected_forms_raise_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        durations.parse(value)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(days=10), "10 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(weeks=2), "2 weeks"),
        (timedelta(hours=36), "36 hours"),
        (timedelta(minutes=5), "5 minutes"),
        (timedelta(seconds=90), "90 seconds"),
        (timedelta(seconds=1), "1 second"),
        (timedelta(seconds=0.5), "0.5 seconds"),
    ],
)
def test_describe(duration: timedelta, text: str) -> None:
    assert durations.describe(duration) == text
