from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from conveyor.conf import BackendOptions, RetryPolicy, parse_options

QUEUES = frozenset({"default", "low_priority"})


def test_defaults_mean_no_retry_and_no_purge() -> None:
    options = parse_options("default", {}, QUEUES)
    assert options == BackendOptions()
    assert options.policy("default").retry_delay(1) is None
    assert options.purge.finished is None
    assert options.heartbeat_interval == timedelta(seconds=10)
    assert options.worker_timeout == timedelta(seconds=60)


def test_the_documented_example_parses() -> None:
    options = parse_options(
        "default",
        {
            "max_attempts": 10,
            "backoff_factor": 3,
            "queues": {"low_priority": {"max_attempts": 5}},
            "purge": {"finished": "10 days", "unfinished": "20 days"},
        },
        QUEUES,
    )
    assert options.policy("default") == RetryPolicy(max_attempts=10, backoff_factor=3)
    # A per-queue override keeps the defaults it does not name.
    assert options.policy("low_priority") == RetryPolicy(max_attempts=5, backoff_factor=3)
    assert options.purge.finished == timedelta(days=10)
    assert options.purge.unfinished == timedelta(days=20)


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(1, timedelta(seconds=3)), (2, timedelta(seconds=9)), (3, timedelta(seconds=27)), (4, None)],
)
def test_retry_n_waits_backoff_factor_to_the_power_n(attempts: int, expected: object) -> None:
    assert RetryPolicy(max_attempts=4, backoff_factor=3).retry_delay(attempts) == expected


def test_float_backoff_factor_is_accepted() -> None:
    policy = parse_options("default", {"backoff_factor": 1.5, "max_attempts": 3}, QUEUES)
    assert policy.policy("default").retry_delay(2) == timedelta(seconds=2.25)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_atempts": 3}, "TASKS['default'] OPTIONS: unknown option 'max_atempts'"),
        ({"backoff_factor": -1}, "backoff_factor must be a number >= 0, got -1"),
        ({"backoff_factor": "fast"}, "backoff_factor must be a number >= 0, got 'fast'"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1, got 0"),
        ({"max_attempts": 2.5}, "max_attempts must be an integer >= 1, got 2.5"),
        ({"max_attempts": True}, "max_attempts must be an integer >= 1, got True"),
        (
            {"queues": {"low_priority": {"max_attempts": 0}}},
            "OPTIONS queues['low_priority']: max_attempts must be an integer >= 1, got 0",
        ),
        (
            {"queues": {"low_priority": {"retries": 2}}},
            "OPTIONS queues['low_priority']: unknown option 'retries'",
        ),
        ({"queues": {"nope": {}}}, "OPTIONS queues['nope']: queue is not in QUEUES"),
        ({"queues": []}, "OPTIONS queues: must be a dict, got list"),
        ({"purge": {"finished": "ten days"}}, "OPTIONS purge['finished']: cannot read 'ten days'"),
        ({"purge": {"finished": -5}}, "OPTIONS purge['finished']: a duration must not be negative"),
        ({"purge": {"keep": "1 day"}}, "OPTIONS purge: unknown option 'keep'"),
        ({"purge": {"automatic": "yes"}}, "purge['automatic']: must be True or False"),
        ({"purge": {"automatic": True}}, "purge['automatic']: needs 'finished' or 'unfinished'"),
        ({"heartbeat_interval": 0}, "OPTIONS heartbeat_interval: must be longer than zero"),
        (
            {"heartbeat_interval": 30, "worker_timeout": 30},
            "OPTIONS worker_timeout: must be longer than heartbeat_interval",
        ),
        ("max_attempts=3", "TASKS['default'] OPTIONS: must be a dict, got str"),
    ],
)
def test_invalid_options_name_the_key(options: object, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        parse_options("default", options, QUEUES)
    assert message in str(caught.value)
    assert str(caught.value).startswith("TASKS['default'] OPTIONS")
    assert "\n" not in str(caught.value)


def test_any_queue_may_be_overridden_when_queues_are_unrestricted() -> None:
    options = parse_options("default", {"queues": {"anything": {"max_attempts": 2}}}, frozenset())
    assert options.policy("anything").max_attempts == 2
