"""Parsers of ConveyorTask's options: each takes what `@task(...)` was given and returns the
normalised value, or raises TypeError or ValueError saying what is wrong (the task class
adds which task and which option)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.utils.module_loading import import_string

from conveyor import durations
from conveyor.compat import TaskResultStatus
from conveyor.exceptions import TaskOptionError
from conveyor.flow import HELD_STATES, Concurrency, RateLimit, Unique, parse_rate


def max_attempts(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be an integer >= 1, got {value!r}")
    return value


def backoff(value: object) -> Callable[..., Any]:
    """A callable `(exception, task_result) -> seconds | timedelta | None`, or its dotted
    path."""
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise ValueError(f"cannot import {value!r}: {exc}") from None
    if not callable(value):
        raise TypeError(f"must be a callable (exception, task_result), got {value!r}")
    return value


def timeout(value: object) -> timedelta:
    duration = durations.parse(value)
    if duration <= timedelta(0):
        raise ValueError(f"must be longer than zero, got {value!r}")
    return duration


def unique(value: object) -> Unique:
    """True, a Unique, or a dict of Unique's fields."""
    if value is True:
        return Unique()
    if isinstance(value, Mapping):
        value = Unique(**value)
    if not isinstance(value, Unique):
        raise TypeError(f"must be True, a conveyor.flow.Unique or a dict, got {value!r}")
    states = frozenset(value.states)
    unknown = states - {s.value for s in TaskResultStatus}
    if unknown or not states >= HELD_STATES:
        raise ValueError(
            f"states must include READY and RUNNING, and may add SUCCESSFUL and FAILED; "
            f"got {sorted(states)}"
        )
    if value.key is not None and not callable(value.key):
        raise TypeError(f"key must be a callable of the task's arguments, got {value.key!r}")
    period = None if value.period is None else durations.parse(value.period)
    if period is not None and period <= timedelta(0):
        raise ValueError(f"period must be longer than zero, got {value.period!r}")
    return Unique(key=value.key, period=period, states=states)


def concurrency(value: object) -> Concurrency:
    """A limit (an int), a Concurrency, or a dict of Concurrency's fields."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = Concurrency(limit=value)
    elif isinstance(value, Mapping):
        value = Concurrency(**value)
    if not isinstance(value, Concurrency):
        raise TypeError(f"must be a limit, a conveyor.flow.Concurrency or a dict, got {value!r}")
    if isinstance(value.limit, bool) or not isinstance(value.limit, int) or value.limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {value.limit!r}")
    if value.key is not None and not callable(value.key):
        raise TypeError(f"key must be a callable of the task's arguments, got {value.key!r}")
    return value


def rate_limit(value: object) -> RateLimit:
    """'100/m', a RateLimit, or a dict of RateLimit's fields."""
    if isinstance(value, str):
        return parse_rate(value)
    if isinstance(value, Mapping):
        value = RateLimit(**value)
    if not isinstance(value, RateLimit):
        raise TypeError(f"must be 'N/m', a conveyor.flow.RateLimit or a dict, got {value!r}")
    if isinstance(value.limit, bool) or not isinstance(value.limit, int) or value.limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {value.limit!r}")
    period = durations.parse(value.period)
    if period < timedelta(milliseconds=1):
        raise ValueError(f"period must be at least a millisecond, got {value.period!r}")
    if value.key is not None and not callable(value.key):
        raise TypeError(f"key must be a callable of the task's arguments, got {value.key!r}")
    return RateLimit(limit=value.limit, period=period, key=value.key)


OPTION_PARSERS: dict[str, Callable[[Any], Any]] = {
    "rate_limit": rate_limit,
    "unique": unique,
    "concurrency": concurrency,
    "max_attempts": max_attempts,
    "backoff": backoff,
    "timeout": timeout,
}

__all__ = ["OPTION_PARSERS", "TaskOptionError"]
