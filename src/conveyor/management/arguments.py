"""argparse `type=` validators shared by the commands; each error is one line."""

from __future__ import annotations

import argparse
from datetime import timedelta

from conveyor import durations


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def milliseconds(value: str) -> timedelta:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return timedelta(milliseconds=number)


def seconds(value: str) -> timedelta:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return timedelta(seconds=number)


def duration(value: str) -> timedelta:
    try:
        return durations.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
