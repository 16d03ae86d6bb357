"""Back-off policies for `@task(backoff=...)` and OPTIONS' `backoff`.

A back-off is a callable `(exception, task_result) -> seconds | timedelta | None`, called
after a failed attempt that has attempts left; `task_result.attempts` counts the attempts
made so far, the failed one included, and `task_result.errors[-1]` is its error. None stops
retrying: the task ends FAILED.

    from conveyor import retry

    @task(max_attempts=8, backoff=retry.exponential(first=2, cap=600))
    def sync_account(account_id: int) -> None: ...
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from conveyor import durations

type Backoff = Callable[[BaseException, Any], float | timedelta | None]
# A back-off that always retries, after this many seconds.
type Delay = Callable[[BaseException, Any], float]


def seconds(value: float | timedelta | str) -> float:
    """A duration in seconds: a number, a timedelta, or a string such as '5 minutes'."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a delay must be >= 0, got {value!r}")
        return float(value)
    return durations.parse(value).total_seconds()


def exponential(
    *,
    first: float | timedelta | str = 1,
    factor: float = 2,
    cap: float | timedelta | str = timedelta(hours=1),
    jitter: bool = True,
) -> Delay:
    """Wait `first`, then `factor` times longer after each failure, at most `cap`; with
    `jitter` (full jitter), a random delay between zero and that, so tasks that failed
    together do not all come back at the same moment."""
    first_s, cap_s = seconds(first), seconds(cap)
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor!r}")

    def backoff(exception: BaseException, task_result: Any) -> float:
        # Capped before it grows large: factor ** 2000 does not fit a float.
        exponent = min(max(task_result.attempts - 1, 0), 1000)
        ceiling = min(first_s * factor**exponent, cap_s) if factor > 1 else min(first_s, cap_s)
        return random.uniform(0, ceiling) if jitter else ceiling

    return backoff


def constant(delay: float | timedelta | str) -> Delay:
    """Wait the same `delay` after every failure."""
    delay_s = seconds(delay)

    def backoff(exception: BaseException, task_result: Any) -> float:
        return delay_s

    return backoff


def linear(
    step: float | timedelta | str, *, cap: float | timedelta | str = timedelta(hours=1)
) -> Delay:
    """Wait `step` after the first failure, two steps after the second, ... at most `cap`."""
    step_s, cap_s = seconds(step), seconds(cap)

    def backoff(exception: BaseException, task_result: Any) -> float:
        attempts: int = task_result.attempts
        return min(step_s * max(attempts, 1), cap_s)

    return backoff


def only_on(*exception_types: type[BaseException], backoff: Backoff | None = None) -> Backoff:
    """Retry only failures that are instances of `exception_types`, after `backoff`'s delay
    (by default `exponential()`); any other failure is final."""
    if not exception_types or not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in exception_types
    ):
        raise TypeError(f"only_on() takes exception classes, got {exception_types!r}")
    then = backoff or exponential()

    def retry_only_on(exception: BaseException, task_result: Any) -> float | timedelta | None:
        if not isinstance(exception, exception_types):
            return None
        return then(exception, task_result)

    return retry_only_on


# The default shape, ready made for a dotted path (OPTIONS' "backoff": "conveyor.retry.jittered"):
# 1 s, 2 s, 4 s ... at most an hour, full jitter.
jittered = exponential()

__all__ = ["Backoff", "Delay", "constant", "exponential", "jittered", "linear", "only_on"]
