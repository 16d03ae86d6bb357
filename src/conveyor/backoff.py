"""Delays between retries of something that keeps failing: one schedule type for all of them."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds to wait after the n-th consecutive failure: the schedule's n-th entry (counting
    from 0), then its last entry for ever."""

    schedule: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.schedule or min(self.schedule) < 0:
            raise ValueError(f"a back-off schedule needs delays >= 0, got {self.schedule!r}")

    @classmethod
    def exponential(cls, *, first: float, cap: float, steps: int) -> Backoff:
        """first, 2 x first, 4 x first ... up to cap, `steps` entries in all."""
        return cls(tuple(min(first * 2**n, cap) for n in range(steps)))

    def delay(self, failures: int) -> float:
        """The wait after `failures` + 1 consecutive failures."""
        return self.schedule[min(max(failures, 0), len(self.schedule) - 1)]

    def jittered(self, failures: int) -> float:
        """delay(), scaled by a random factor in [0.5, 1]: callers that fail together spread."""
        return self.delay(failures) * random.uniform(0.5, 1.0)
