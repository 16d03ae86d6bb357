"""Parsers of ConveyorTask's options: each takes what `@task(...)` was given and returns the
normalised value, or raises TypeError or ValueError saying what is wrong (the task class
adds which task and which option)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils.module_loading import import_string

from conveyor import durations
from conveyor.exceptions import TaskOptionError


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


OPTION_PARSERS: dict[str, Callable[[Any], Any]] = {
    "max_attempts": max_attempts,
    "backoff": backoff,
    "timeout": timeout,
}

__all__ = ["OPTION_PARSERS", "TaskOptionError"]
