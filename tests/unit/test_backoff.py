from __future__ import annotations

import pytest

from conveyor.backoff import Backoff


def test_the_schedule_is_followed_then_its_last_delay_repeats() -> None:
    backoff = Backoff((0.1, 0.5, 2.0))
    assert [backoff.delay(n) for n in range(5)] == [0.1, 0.5, 2.0, 2.0, 2.0]


def test_exponential_doubles_up_to_the_cap() -> None:
    assert Backoff.exponential(first=0.01, cap=0.05, steps=5).schedule == (
        0.01,
        0.02,
        0.04,
        0.05,
        0.05,
    )


def test_jitter_stays_between_half_and_the_whole_delay() -> None:
    backoff = Backoff((2.0,))
    samples = [backoff.jittered(0) for _ in range(500)]
    assert all(1.0 <= s <= 2.0 for s in samples)
    assert max(samples) - min(samples) > 0.5  # spread, not one value


@pytest.mark.parametrize("schedule", [(), (1.0, -0.5)])
def test_a_schedule_needs_delays_of_zero_or_more(schedule: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="a back-off schedule needs delays >= 0"):
        Backoff(schedule)
