"""conveyor.retry's back-offs, the answers a policy may give, and the OPTIONS that set them."""

from __future__ import annotations

import math
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from conveyor import retry
from conveyor.conf import parse_options
from conveyor.models import TaskRecord
from conveyor.policies import TaskPolicies, as_delay

QUEUES = frozenset({"default", "low_priority"})


def after(attempts: int) -> Any:
    """A stand-in for the task_result a policy gets: what the helpers read."""
    return SimpleNamespace(attempts=attempts, errors=[])


def test_full_jitter_stays_between_zero_and_the_capped_exponential_over_many_samples() -> None:
    backoff = retry.exponential(first=1, factor=2, cap=60)
    for attempts, ceiling in [(1, 1), (3, 4), (6, 32), (7, 60), (40, 60), (5000, 60)]:
        samples = [backoff(ValueError(), after(attempts)) for _ in range(2000)]
        assert all(0 <= s <= ceiling for s in samples), (attempts, min(samples), max(samples))
        # Spread over the whole range, not bunched at one end.
        assert min(samples) < ceiling * 0.05, attempts
        assert max(samples) > ceiling * 0.95, attempts
        assert math.isclose(sum(samples) / len(samples), ceiling / 2, rel_tol=0.1), attempts


def test_exponential_without_jitter_doubles_up_to_the_cap() -> None:
    backoff = retry.exponential(first="2 seconds", cap=timedelta(seconds=20), jitter=False)
    assert [backoff(ValueError(), after(n)) for n in range(1, 6)] == [2, 4, 8, 16, 20]


def test_constant_and_linear() -> None:
    assert retry.constant("1 minute")(ValueError(), after(7)) == 60
    linear = retry.linear(5, cap=12)
    assert [linear(ValueError(), after(n)) for n in (1, 2, 3)] == [5, 10, 12]


def test_only_on_retries_the_named_failures_and_ends_the_others() -> None:
    backoff = retry.only_on(ConnectionError, TimeoutError, backoff=retry.constant(3))
    assert backoff(ConnectionResetError(), after(1)) == 3  # a subclass counts
    assert backoff(ValueError(), after(1)) is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (retry.only_on, "takes exception classes"),
        (lambda: retry.only_on(ValueError()), "takes exception classes"),  # type: ignore[arg-type]
        (lambda: retry.exponential(factor=0.5), "factor must be >= 1"),
        (lambda: retry.constant(-1), "must be >= 0"),
    ],
)
def test_helpers_refuse_wrong_arguments_when_declared(call: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        call()


@pytest.mark.parametrize(
    ("answer", "delay"),
    [(None, None), (0, timedelta(0)), (2.5, timedelta(seconds=2.5)), (timedelta(1), timedelta(1))],
)
def test_a_policy_may_answer_seconds_a_timedelta_or_none(answer: Any, delay: Any) -> None:
    assert as_delay(answer) == delay


@pytest.mark.parametrize("answer", ["5", True, -1, float("nan"), float("inf"), timedelta(-1)])
def test_any_other_answer_is_refused(answer: Any) -> None:
    with pytest.raises(ValueError, match="returned"):
        as_delay(answer)


def test_backend_and_queue_options_take_a_backoff_and_a_timeout() -> None:
    options = parse_options(
        "default",
        {
            "backoff": "conveyor.retry.exponential",
            "timeout": "5 minutes",
            "queues": {"low_priority": {"timeout": 10, "backoff_factor": 3}},
        },
        QUEUES,
    )
    assert options.policy("default").backoff is retry.exponential
    assert options.policy("default").timeout == timedelta(minutes=5)
    low = options.policy("low_priority")
    # The queue's own backoff_factor is not overridden by the inherited backoff.
    assert (low.backoff, low.backoff_factor, low.timeout) == (None, 3, timedelta(seconds=10))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backoff": 3}, r"TASKS\['default'\] OPTIONS: backoff must be a callable"),
        ({"backoff": "no.such.policy"}, "OPTIONS: backoff cannot import 'no.such.policy'"),
        ({"timeout": 0}, "OPTIONS: timeout must be longer than zero"),
        (
            {"queues": {"low_priority": {"timeout": "never"}}},
            r"OPTIONS queues\['low_priority'\]: timeout cannot read 'never'",
        ),
    ],
)
def test_a_bad_backoff_or_timeout_names_alias_and_key(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_options("default", options, QUEUES)


def test_a_task_s_timeout_comes_before_its_queue_s_and_the_backend_s() -> None:
    options = parse_options(
        "default", {"timeout": 60, "queues": {"low_priority": {"timeout": 30}}}, QUEUES
    )
    policies = TaskPolicies(options)

    def timeout(path: str, queue: str = "default") -> timedelta | None:
        return policies.timeout(TaskRecord(task_path=path, queue_name=queue))

    assert timeout("tests.tasksapp.tasks.hang") == timedelta(seconds=0.5)
    assert timeout("tests.tasksapp.tasks.add", "low_priority") == timedelta(seconds=30)
    assert timeout("tests.tasksapp.tasks.add") == timedelta(seconds=60)
    assert timeout("tests.tasksapp.tasks.no_longer_there") == timedelta(seconds=60)
