"""argparse `type=` validators shared by the commands; each error is one line."""

from __future__ import annotations

import argparse
from datetime import timedelta

from conveyor import durations


def positive_int(value: str) -> int:
    return whole_number(value, least=1)


def non_negative_int(value: str) -> int:
    return whole_number(value, least=0)


def whole_number(value: str, *, least: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {number}")
    return number


def port(value: str) -> int:
    number = positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {number}")
    return number


def milliseconds(value: str) -> timedelta:
    return timedelta(milliseconds=non_negative(value, "milliseconds"))


def seconds(value: str) -> timedelta:
    return timedelta(seconds=non_negative(value, "seconds"))


def non_negative(value: str, unit: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {unit}, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return number


def duration(value: str) -> timedelta:
    try:
        return durations.parse(value, forms=durations.COMMAND_LINE_FORMS)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
