"""Parse the durations that settings and command-line options accept."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils.dateparse import parse_duration

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_WORDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week)s?\s*$", re.IGNORECASE)


# What a setting may be, and what a shell can type.
SETTING_FORMS = "a timedelta, seconds, '10 days', '3 hours' or 'P10D'"
COMMAND_LINE_FORMS = "seconds, '10 days', '3 hours' or 'P10D'"


def parse(value: object, *, forms: str = SETTING_FORMS) -> timedelta:
    """
    Turn a timedelta, a number of seconds, or a string into a non-negative timedelta.

    Strings may be "N seconds/minutes/hours/days/weeks" or any form of Django's
    parse_duration ("10 days", "1 02:00:00", "P10D"). Raise ValueError otherwise, naming
    the accepted `forms`.
    """
    duration = _to_timedelta(value, forms)
    if duration < timedelta(0):
        raise ValueError(f"a duration must not be negative, got {value!r}")
    return duration


def _to_timedelta(value: object, forms: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str) and value.strip():
        if match := _WORDS.match(value):
            return timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()])
        if (parsed := parse_duration(value.strip())) is not None:
            return parsed
    raise ValueError(f"cannot read {value!r} as a duration (use {forms})")


def describe(duration: timedelta) -> str:
    """A duration as people write it: '10 days', '12 hours', '90 seconds'."""
    seconds = duration.total_seconds()
    for unit in ("week", "day", "hour", "minute"):
        count = seconds / _UNITS[unit]
        if count >= 1 and count.is_integer():
            return f"{int(count)} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"
